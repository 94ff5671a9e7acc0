"""Images per second in this process and on local Dask clusters of N workers.

    python bench/bench_cluster.py [IMAGES...] [--workers 1 2] [--limit 12]
        [--model NAME] [--diameter auto|PIXELS|none]

Predicts the same images (default: the bundled sample, repeated to --limit)
with ``NucleusInferencer`` in this process, then on a local cluster of each
--workers count (``custom_modules.inference.cluster``), and prints seconds, images per
second, the ratio to this process, the cluster's start-up time and each
worker's peak resident memory. Workers build their model on their first
image: that cost is in their time, as it is in a real run.
"""
import argparse
import glob
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB: ``VmHWM``, the peak of its own memory.

    Not ``ru_maxrss``: Linux carries it across fork and exec, so a worker that
    this process started reports at least this process's size at the start
    (every worker read 688 MiB alike, the model-holding parent's size).
    """
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) for line in status if line.startswith('VmHWM')) / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('images', nargs='*')
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--limit', type=int, default=12)
    parser.add_argument('--model', default=None)
    parser.add_argument('--diameter', default='auto')
    args = parser.parse_args(argv)
    images = args.images or sorted(glob.glob(f'{REPO}/data/sample/stage1_train/*/images/*.png'))
    if not images or min(args.workers) < 1 or args.limit < 1:
        parser.error('need images (the bundled sample is absent), --workers >= 1, --limit >= 1')
    paths = [images[k % len(images)] for k in range(args.limit)]
    import torch

    from custom_modules.inference.cluster import cluster_results, start_client
    from custom_modules.inference.diameter import parse_diameter
    from custom_modules.inference.inferencer import NucleusInferencer
    inferencer = NucleusInferencer(args.model, diameter=parse_diameter(args.diameter))
    start = time.perf_counter()
    inferencer(paths)
    base = time.perf_counter() - start
    print(f'{len(paths)} images ({len(set(paths))} distinct), model '
          f'{args.model or "default"}, diameter {args.diameter}; this process: '
          f'{torch.get_num_threads()} torch threads')
    print(f'{"run":<22}{"s":>8}{"images/s":>10}{"vs here":>9}{"start s":>9}{"peak MiB":>16}')
    print(f'{"this process":<22}{base:8.1f}{len(paths) / base:10.3f}{1:9.2f}{0:9.1f}'
          f'{peak_rss_mib():16.0f}')
    for workers in args.workers:
        start = time.perf_counter()
        with start_client(workers) as client:
            client.wait_for_workers(workers)
            started = time.perf_counter()
            failed = [p for p, r in cluster_results(client, inferencer, paths)
                      if isinstance(r, Exception)]
            seconds = time.perf_counter() - started
            peaks = sorted(client.run(peak_rss_mib).values())
        if failed:
            parser.error(f'failed on the cluster: {", ".join(failed)}')
        print(f'{f"{workers} worker(s)":<22}{seconds:8.1f}{len(paths) / seconds:10.3f}'
              f'{base / seconds:9.2f}{started - start:9.1f}'
              f'{"/".join(f"{p:.0f}" for p in peaks):>16}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
