"""Seconds per image of each shipped model, one view and TTA, at 256 and 1024 px.

The figures ``--list-models`` prints: each model predicts a real DSB2018 image
of each size (``--data``; else the bundled sample, mirrored out to the size),
whole (no tiling), without rescaling (``diameter=None``: ``auto`` adds its
probe, about two views), after one warm-up call; the median of ``--reps`` calls.
The first model is the baseline of the ratio column.

    python bench/bench_models.py [--models NAME|FOLDER ...] [--sizes 256 1024]
        [--reps 3] [--tta-reps 1] [--write]

Each model is timed in a forked process of its own, whose peak resident memory
is recorded beside its seconds (``peak_rss_mib``).

``--write`` records the figures in each model folder's ``metrics.json``
(``speed_by_size``), with the command, date and this machine's CPU.
"""
import argparse
import datetime
import glob
import json
import multiprocessing
import os
import platform
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from custom_modules.data.image_header import header_shape  # noqa: E402
from custom_modules.data.image_io import read_any_image  # noqa: E402
from custom_modules.inference import model_zoo  # noqa: E402
from custom_modules.inference.inferencer import NucleusInferencer  # noqa: E402
from custom_modules.io.atomic import write_atomic  # noqa: E402

DSB = os.path.join(ROOT, '..', 'shared', 'dsb2018', 'stage1_train')
SAMPLE = os.path.join(ROOT, 'data', 'sample', 'stage1_train')


def cpu_name() -> str:
    """The CPU model and the cores torch uses."""
    name = platform.processor() or 'cpu'
    try:
        with open('/proc/cpuinfo') as f:
            name = next(line.split(':', 1)[1].strip() for line in f if 'model name' in line)
    except (OSError, StopIteration):
        pass
    return f'{name}, {torch.get_num_threads()} threads'


def image_of_size(side: int, data: str) -> tuple:
    """``(image, source)``: a DSB2018 image of ``side x side``, else the sample mirrored out."""
    for path in sorted(glob.glob(os.path.join(data, '*', 'images', '*.png'))):
        if header_shape(path) == (side, side):  # the header only: no decoding of the rest
            return read_any_image(path), os.path.basename(path)
    path = sorted(glob.glob(os.path.join(SAMPLE, '*', 'images', '*.png')))[0]
    return mirrored_out(read_any_image(path), (side, side)), os.path.basename(path) + ' mirrored'


def mirrored_out(img: np.ndarray, shape) -> np.ndarray:
    """``img`` mirrored out (symmetric padding, right and down) and cut to ``shape``."""
    pads = [(0, max(0, want - have)) for want, have in zip(shape, img.shape[:2])]
    tiled = np.pad(img, pads + [(0, 0)] * (img.ndim - 2), mode='symmetric')
    return np.ascontiguousarray(tiled[:shape[0], :shape[1]])


def seconds(inferencer: NucleusInferencer, img: np.ndarray, reps: int, warm_up: bool) -> float:
    """Median seconds of ``reps`` predictions, after one warm-up call if ``warm_up``."""
    if warm_up:
        inferencer.predict(img)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        inferencer.predict(img)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_model(model: str, images: Dict[int, np.ndarray], reps: int,
               tta_reps: int) -> Dict[str, dict]:
    """``{side: {'one_view': s, 'tta': s}}`` for one model.

    The TTA calls come after the one-view calls on the same images (the process
    is warm), so they get no warm-up call of their own: a 15-view TTA of a
    1024 px image takes minutes.
    """
    out = {str(side): {} for side in images}
    for tta in (False, True):
        inferencer = NucleusInferencer(model, tta=tta, tile=0, diameter=None)
        for side, img in images.items():
            out[str(side)]['tta' if tta else 'one_view'] = round(
                seconds(inferencer, img, tta_reps if tta else reps, warm_up=not tta), 3)
    return out


def time_in_child(model: str, images: Dict[int, np.ndarray], reps: int,
                  tta_reps: int) -> tuple:
    """``(speed, peak MiB)``: :func:`time_model` in a forked process of its own, whose peak
    resident memory (Linux reports KiB) is then this model's (and the images')."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('fork')) as pool:
        return pool.submit(_timed, model, images, reps, tta_reps).result()


def _timed(model: str, images: Dict[int, np.ndarray], reps: int, tta_reps: int) -> tuple:
    speed = time_model(model, images, reps, tta_reps)
    return speed, round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def record(model: str, speed: dict) -> str:
    """Write ``speed`` into the model folder's ``metrics.json``; return its path."""
    folder = model if os.path.isdir(model) else model_zoo.model_folder(model)
    path = os.path.join(folder, model_zoo.METRICS)
    metrics = model_zoo.read_metrics(folder)
    metrics['speed_by_size'] = speed
    write_atomic(path, (json.dumps(metrics, indent=2) + '\n').encode())
    return path


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', help='shipped names or model folders (default: all)')
    parser.add_argument('--sizes', type=int, nargs='+', default=[256, 1024])
    parser.add_argument('--reps', type=int, default=3, help='one-view calls timed per size')
    parser.add_argument('--tta-reps', type=int, default=1, help='TTA calls timed per size')
    parser.add_argument('--data', default=DSB, help='DSB2018 stage1_train to take images from')
    parser.add_argument('--write', action='store_true', help="record in each model's metrics.json")
    args = parser.parse_args(argv)
    models = args.models or model_zoo.list_models()
    picked = {side: image_of_size(side, args.data) for side in args.sizes}
    images = {side: img for side, (img, _) in picked.items()}
    for side, (_, source) in picked.items():
        print(f'{side} x {side}: {source}')
    timed = {model: time_in_child(model, images, args.reps, args.tta_reps) for model in models}
    results = {model: speed for model, (speed, _) in timed.items()}
    base = results[models[0]]
    print(f'{"model":28}' + ''.join(f'{f"{s} 1 view":>12}{f"{s} TTA":>10}{"TTA/1":>7}'
                                    for s in args.sizes)
          + f'{"peak MiB":>10}  (ratio to {models[0]})')
    for model, speed in results.items():
        cells = ''
        for s in map(str, args.sizes):
            one, tta = speed[s]['one_view'], speed[s]['tta']
            cells += (f'{one:8.2f}x{one / base[s]["one_view"]:<4.2f}{tta:9.2f} '
                      f'{tta / one:6.1f}')
        print(f'{os.path.basename(model.rstrip("/")):28}{cells}{timed[model][1]:10.0f}')
    if args.write:
        command = 'python bench/bench_models.py ' + ' '.join(argv if argv is not None
                                                               else sys.argv[1:])
        for model, speed in results.items():
            entry = dict(seconds=speed, machine=cpu_name(), reps=args.reps,
                         tta_reps=args.tta_reps, peak_rss_mib=timed[model][1],
                         images={str(s): source for s, (_, source) in picked.items()},
                         note='whole image, no rescaling (diameter none); one view: median '
                              'after a warm-up; TTA: after the one-view calls, no warm-up; '
                              'peak: the forked process that timed this model',
                         date=datetime.date.today().isoformat(), command=command)
            print('wrote', record(model, entry))


if __name__ == '__main__':
    main()
