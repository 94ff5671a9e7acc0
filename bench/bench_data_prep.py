"""data_prep over a whole competition folder: seconds, images/s, peak memory.

    python bench/bench_data_prep.py ../shared/dsb2018/stage1_train OUT_DIR [--groups CSV]

Bad input gets data_prep's own message and exit code (2); nothing is timed.
"""
import argparse
import json
import os.path as osp
import resource
import sys
import time

from data_prep.prepare_dsb import main as prepare


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('src')
    parser.add_argument('out_dir')
    parser.add_argument('--groups')
    args = parser.parse_args(argv)
    argv = [args.src, args.out_dir] + (['--groups', args.groups] if args.groups else [])
    t0 = time.perf_counter()
    code = prepare(argv)
    if code != 0:
        return code
    seconds = time.perf_counter() - t0
    with open(osp.join(args.out_dir, 'full.json')) as f:
        coco = json.load(f)
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    n = len(coco['images'])
    print(f'data_prep: {n} images, {len(coco.get("annotations", []))} nuclei in {seconds:.1f} s '
          f'({n / seconds:.1f} images/s, after imports)')
    print(f'peak memory: main {peak_self:.0f} MiB, largest worker {peak_child:.0f} MiB')
    return 0


if __name__ == '__main__':
    sys.exit(main())
