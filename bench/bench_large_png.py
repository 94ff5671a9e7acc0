"""Peak memory of predicting a large PNG: prepared whole (before) against tile by tile.

    python bench/bench_large_png.py [--side 8000] [--colour] [--folder /tmp/bench_large_png]

Writes a ``side x side`` 8-bit PNG (grey, or BGR with ``--colour``) of bright
discs on black (a few hundred KB), then predicts it in two fresh processes with
the function ``tools/predict.py`` uses
(:func:`~custom_modules.inference.prediction_files.render_image`, then
``write_image_files``), a cheap threshold predictor tiled 512 / 128 (the tests'
``spots_model``: the figures are the pipeline's, not a network's):

- ``whole``: ``slide=None``, what every PNG got before: decoded, prepared and
  predicted as one image (label PNG, full-size overlay);
- ``tiles``: ``SlideOptions(force=True)`` (``--whole-slide``; the default for
  images above 64 Mpx): decoded once, prepared and predicted per tile, OME-Zarr.

Prints each run's peak resident memory above the process's start after the
model is built (``VmHWM``), in MiB and bytes per pixel, the decoded pixels'
size, and the ratio to ``whole`` (the baseline). Memory figures hold under
load; times do not, so none are printed.
"""
import argparse
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peak_bytes() -> int:
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmHWM')) * 1024


def write_png(path: str, side: int, colour: bool) -> None:
    """``side x side`` discs of radius 6-14 on black, about one per 400 x 400 px."""
    import cv2
    import numpy as np
    img = np.zeros((side, side, 3) if colour else (side, side), np.uint8)
    rng = np.random.default_rng(0)
    for cy, cx in rng.integers(0, side, size=(max(1, side * side // 160_000), 2)):
        cv2.circle(img, (int(cx), int(cy)), int(rng.integers(6, 15)),
                   (200, 160, 220) if colour else 200, -1)
    cv2.imwrite(path, img)


def run_one(mode: str, png: str, out: str) -> None:
    """In a fresh process: predict ``png`` one way and print ``RESULT mode base peak``."""
    sys.path[:0] = [REPO, os.path.join(REPO, 'tests')]
    from spots_model import spots_inferencer
    from custom_modules.data.slide_io import SlideOptions
    from custom_modules.inference.prediction_files import render_image, write_image_files
    inferencer = spots_inferencer(tile=512, overlap=128)
    base = peak_bytes()
    slide = None if mode == 'whole' else SlideOptions(force=True)
    files = render_image(inferencer, png, 0, out, {}, slide=slide)
    write_image_files(out, png, files)
    print('RESULT', mode, base, peak_bytes())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--side', type=int, default=8000)
    parser.add_argument('--colour', action='store_true', help='a BGR PNG (default: grey)')
    parser.add_argument('--folder', default='/tmp/bench_large_png')
    parser.add_argument('--run', nargs=3, metavar=('MODE', 'PNG', 'OUT'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        run_one(*args.run)
        return 0
    if args.side < 1:
        parser.error('--side must be at least 1')
    os.makedirs(args.folder, exist_ok=True)
    png = os.path.join(args.folder, f'discs_{args.side}.png')
    write_png(png, args.side, args.colour)
    pixels, channels = args.side * args.side, 3 if args.colour else 1
    print(f'{png}: {args.side} x {args.side}, {os.path.getsize(png) / 1e3:,.0f} KB, decoded '
          f'{pixels * channels / 2**20:,.0f} MiB ({channels} B/px)')
    print('| run | peak above start MiB | B/px | ratio to whole |')
    print('| --- | --- | --- | --- |')
    first = None
    for mode in ('whole', 'tiles'):
        out = os.path.join(args.folder, f'out_{mode}')
        shutil.rmtree(out, ignore_errors=True)
        done = subprocess.run([sys.executable, os.path.abspath(__file__), '--run', mode, png, out],
                              capture_output=True, text=True)
        if done.returncode:
            print(done.stderr[-2000:], file=sys.stderr)
            return 1
        base, peak = map(int, done.stdout.split('RESULT')[1].split()[1:3])
        first = first or peak - base
        print(f'| {mode} | {(peak - base) / 2**20:,.0f} | {(peak - base) / pixels:.1f} | '
              f'{(peak - base) / first:.2f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
