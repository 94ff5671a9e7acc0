"""Whole-slide prediction: seconds per megapixel and peak memory, in-process and on workers.

    python bench/bench_slide.py [--sizes 2000 4000 8000] [--workers 2] [--in-process-max SIDE]
        [--model NAME] [--diameter none] [--folder /tmp/bench_slide]

For each size N, writes a synthetic N x N slide as a tiled, compressed OME-TIFF
(bright discs of radius 4-12 on a dark noisy background, about one per 48 x 48
cell, drawn tile by tile: the script never holds the slide), then runs
``tools/predict.py SLIDE --whole-slide`` into OME-Zarr, in a fresh process
(in-process prediction) and with ``--workers W`` (a local Dask cluster), and
prints seconds, seconds per megapixel, nuclei, and peak resident memory
(``VmHWM``) of the predicting process and of each worker (read on the workers
by ``client.run`` before the cluster closes). The in-process run is the baseline
of the ratio. A 20,000 x 20,000 slide: ``--sizes 20000`` (hours on 2 CPU cores;
``--in-process-max 8000`` runs it on the workers only).
"""
import argparse
import os
import re
import subprocess
import sys
import textwrap
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TILE = 512

RUNNER = textwrap.dedent('''
    import sys
    sys.path[:0] = [{repo!r}, {repo!r} + '/tools']

    def peak_mib():
        with open('/proc/self/status') as f:
            return next(int(l.split()[1]) for l in f if l.startswith('VmHWM')) / 1024

    import custom_modules.inference.cluster as cluster
    start_client = cluster.start_client

    class Recorded:
        """A client that reports its workers' peak memory before it closes."""
        def __init__(self, client):
            self.client = client
        def __enter__(self):
            return self.client.__enter__()
        def __exit__(self, *exc):
            peaks = sorted(self.client.run(peak_mib).values())
            print('WORKERS', ' '.join(f'{{p:.0f}}' for p in peaks))
            return self.client.__exit__(*exc)

    if __name__ == '__main__':  # not when a spawned worker imports this file
        cluster.start_client = lambda *a, **k: Recorded(start_client(*a, **k))
        import predict
        code = predict.main(sys.argv[1:])
        print('PEAK', f'{{peak_mib():.0f}}', code)
''')


def disc_tile(index: int, shape, spacing: int = 48):
    """One tile of the synthetic slide (its own seed: the same slide every time)."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(index)
    tile = rng.normal(30, 5, shape).clip(0, 255).astype(np.uint8)
    count = shape[0] * shape[1] // spacing ** 2
    for cy, cx, r in zip(rng.integers(12, max(13, shape[0] - 12), count),
                         rng.integers(12, max(13, shape[1] - 12), count),
                         rng.integers(4, 13, count)):
        cv2.circle(tile, (int(cx), int(cy)), int(r), 200, -1)
    return tile


def write_slide(path: str, side: int) -> None:
    """An OME-TIFF of ``side x side`` grey pixels in compressed 512 x 512 tiles (written
    under a temporary name and renamed: a killed run leaves no slide to reuse)."""
    import tifffile
    tiles = (disc_tile(k, (TILE, TILE)) for k in range((-(-side // TILE)) ** 2))
    part = f'{path}.{os.getpid()}.tmp'
    try:
        tifffile.imwrite(part, tiles, shape=(side, side), dtype='uint8', tile=(TILE, TILE),
                         compression='zlib', ome=True, metadata={'axes': 'YX'})
        os.replace(part, path)
    finally:
        if os.path.exists(part):
            os.remove(part)


def predict(slide: str, out: str, extra) -> dict:
    """Run tools/predict.py in a fresh process; its seconds, peaks and nuclei."""
    runner = os.path.join(out + '.runner.py')
    with open(runner, 'w') as f:
        f.write(RUNNER.format(repo=REPO))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, runner, slide, '--out', out, '--whole-slide',
                           '--overwrite'] + extra, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak = re.search(r'^PEAK (\d+) (\d+)$', done.stdout, re.M)
    if done.returncode or not peak or peak.group(2) != '0':
        raise SystemExit(f'predict failed on {slide}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}')
    workers = re.search(r'^WORKERS (.*)$', done.stdout, re.M)
    nuclei = re.search(r'(\d+) nuclei in', done.stdout)
    return dict(seconds=seconds, peak=int(peak.group(1)), nuclei=int(nuclei.group(1)),
                workers=workers.group(1).replace(' ', '/') if workers else '-')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', type=int, nargs='+', default=[2000, 4000, 8000])
    parser.add_argument('--workers', type=int, default=2, help='0: in-process only')
    parser.add_argument('--in-process-max', type=int, default=None, metavar='SIDE',
                        help='larger sides run on the workers only (the in-process run of '
                             'a large slide takes as long again; default: every side)')
    parser.add_argument('--model', help='a shipped model (default: the default one)')
    parser.add_argument('--diameter', default='none')
    parser.add_argument('--folder', default='/tmp/bench_slide')
    args = parser.parse_args(argv)
    if min(args.sizes) <= TILE or args.workers < 0:
        parser.error(f'--sizes must exceed the tile ({TILE}) and --workers be >= 0')
    os.makedirs(args.folder, exist_ok=True)
    extra = ['--diameter', args.diameter, '--max-pixels', '0']
    extra += ['--model', args.model] if args.model else []
    print(f'model {args.model or "default"}, --diameter {args.diameter}; seconds include '
          'start-up (model build, cluster start) and all outputs')
    print(f'{"side":>7}{"Mpx":>6}{"run":>12}{"nuclei":>8}{"s":>9}{"s/Mpx":>8}{"vs here":>9}'
          f'{"peak MiB":>10}{"worker peaks MiB":>18}')
    for side in args.sizes:
        slide = os.path.join(args.folder, f'slide_{side}.ome.tif')
        if not os.path.isfile(slide):
            write_slide(slide, side)
        here = args.in_process_max is None or side <= args.in_process_max or not args.workers
        runs = [('in-process', [])] * here + ([(f'{args.workers} workers', ['--workers',
                                                                             str(args.workers)])]
                                              if args.workers else [])
        base = None
        for name, flags in runs:
            out = os.path.join(args.folder, f'out_{side}_{flags[-1] if flags else 0}')
            got = predict(slide, out, extra + flags)
            base = base or got['seconds']
            mpx = side * side / 1e6
            ratio = f'{base / got["seconds"]:9.2f}' if here else f'{"-":>9}'
            print(f'{side:7d}{mpx:6.0f}{name:>12}{got["nuclei"]:8d}{got["seconds"]:9.1f}'
                  f'{got["seconds"] / mpx:8.2f}{ratio}{got["peak"]:10d}'
                  f'{got["workers"]:>18}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
