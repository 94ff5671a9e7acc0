"""Where one view's seconds go: each shipped model's prediction of one image, by phase.

    python bench/profile_inference.py [--models nucleiseg_mrcnn nucleiseg_unet]
        [--sizes 256x256 696x520 1024x1024 2000x2000] [--reps 1] [--rounds 1] [--data DIR]

Each model predicts a real DSB2018 image of each size (``WxH``; a size no image has
is the largest image mirrored out to it) through ``NucleusInferencer`` as
``tools/predict.py`` does, one view, ``--diameter none`` and the config's tiling
(images above 1400 px in tiles), after one warm-up call. The seconds of the model's
phases are summed over the call (over its tiles too) by timing wrappers around the
methods below; "the rest" is what is left of the whole call (reading the image into
the model's input, tiling and joining, the inferencer's checks). Each model and size
runs in a forked process of its own, whose peak resident memory is printed beside it.
With ``--rounds R`` the models run R times in turn (model A, B, A, B, ...: drift on a
shared machine falls on all of them), the phase tables are the first round's, and a last
table gives each model's median whole call over the rounds and the first model's median
over it (how many times faster than the first, the baseline).
"""
import argparse
import glob
import multiprocessing
import os
import resource
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Tuple

import numpy as np

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [ROOT, BENCH]

from bench_models import mirrored_out  # noqa: E402

from custom_modules.data.image_header import header_shape  # noqa: E402
from custom_modules.data.image_io import read_any_image  # noqa: E402

DSB = os.path.join(ROOT, '..', 'shared', 'dsb2018', 'stage1_train')
# (owner path below the model, method, phase); owner '' is the model itself.
PHASES = {
    'NucleusMaskRCNN': [
        ('data_preprocessor', 'forward', 'normalise and pad'),
        ('', 'extract_feat', 'backbone + FPN'),
        ('rpn_head', 'forward', 'RPN convolutions'),
        ('rpn_head', 'predict_by_feat', 'RPN proposals (NMS)'),
        ('roi_head', 'predict_bbox', 'box head + NMS'),
        ('roi_head', '_mask_forward', 'mask head'),
        ('', 'paste_soft', 'pasting soft masks'),
        ('', 'predict_from_raw', 'label map + post-processing'),
    ],
    'NucleusUNet': [
        ('data_preprocessor', 'forward', 'normalise and pad'),
        ('', '_forward', 'encoder + decoders'),
        ('', 'predict_from_raw', 'decoding (seeds, watershed) + post-processing'),
    ],
}


def parse_size(text: str) -> Tuple[int, int]:
    """``'WxH'`` as ``(height, width)``."""
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r}: expected WIDTHxHEIGHT, e.g. 696x520')
    if width < 16 or height < 16:
        raise argparse.ArgumentTypeError(f'{text}: at least 16 x 16')
    return height, width


def image_of_shape(shape: Tuple[int, int], data: str) -> Tuple[np.ndarray, str]:
    """A DSB2018 image of ``shape`` (rows, columns), else the largest one mirrored out."""
    paths = sorted(glob.glob(os.path.join(data, '*', 'images', '*.png')))
    if not paths:
        raise ValueError(f'{data}: no DSB2018 images (*/images/*.png)')
    shapes = {path: header_shape(path) for path in paths}
    for path, found in shapes.items():
        if tuple(found) == tuple(shape):
            return read_any_image(path), os.path.basename(path)
    path = max(paths, key=lambda p: shapes[p][0] * shapes[p][1])
    return mirrored_out(read_any_image(path), shape), os.path.basename(path) + ' mirrored'


class PhaseClock:
    """Seconds summed per phase by wrappers around methods."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = defaultdict(float)

    def wrap(self, owner, attr: str, phase: str) -> None:
        original = getattr(owner, attr)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start

        setattr(owner, attr, timed)


def profile(model: str, img: np.ndarray, reps: int) -> dict:
    """Phase seconds (mean of ``reps`` calls after a warm-up), the whole call and peak MiB."""
    from custom_modules.inference import inferencer as inferencer_module
    inferencer = inferencer_module.NucleusInferencer(model, diameter=None)
    clock = PhaseClock()
    nets = [m for m in inferencer.predictor.modules() if type(m).__name__ in PHASES]
    for net in nets:
        for owner, attr, phase in PHASES[type(net).__name__]:
            clock.wrap(net.get_submodule(owner) if owner else net, attr, phase)
    clock.wrap(inferencer_module, 'measure_nuclei', 'measurements')
    inferencer.predict(img)
    clock.seconds.clear()
    start = time.perf_counter()
    for _ in range(reps):
        nuclei = int(inferencer.predict(img)['label_map'].max())
    total = (time.perf_counter() - start) / reps
    phases = {name: s / reps for name, s in clock.seconds.items()}
    phases['the rest'] = total - sum(phases.values())
    return dict(phases=phases, total=total, nuclei=nuclei,
                peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def profile_in_child(model: str, img: np.ndarray, reps: int) -> dict:
    """:func:`profile` in a forked process: its peak memory is this model's and size's."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('fork')) as pool:
        return pool.submit(profile, model, img, reps).result()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=['nucleiseg_mrcnn', 'nucleiseg_unet'])
    parser.add_argument('--sizes', type=parse_size, nargs='+',
                        default=[(256, 256), (520, 696), (1024, 1024), (2000, 2000)])
    parser.add_argument('--reps', type=int, default=1, help='timed calls per model and size')
    parser.add_argument('--rounds', type=int, default=1,
                        help='the models in turn this many times; ratios to the first model')
    parser.add_argument('--data', default=DSB, help='DSB2018 stage1_train to take images from')
    args = parser.parse_args(argv)
    if args.reps < 1 or args.rounds < 1:
        parser.error('--reps and --rounds must be at least 1')
    try:
        images = {shape: image_of_shape(shape, args.data) for shape in args.sizes}
    except ValueError as err:
        parser.error(str(err))
    for (h, w), (_, source) in images.items():
        print(f'{w} x {h}: {source}')
    totals = defaultdict(list)  # (model index, shape): whole call of each round
    for round_ in range(args.rounds):
        for index, model in enumerate(args.models):
            runs = {shape: profile_in_child(model, img, args.reps)
                    for shape, (img, _) in images.items()}
            for shape, run in runs.items():
                totals[index, shape].append(run['total'])
            if round_ == 0:
                print_phases(model, runs)
    if args.rounds > 1:
        print_ratios(args.models, list(images), totals, args.rounds)


def print_phases(model: str, runs: dict) -> None:
    """One model's table: seconds (share) per phase and size, whole call, nuclei, peak MiB."""
    names = list(dict.fromkeys(n for run in runs.values() for n in run['phases']))
    print(f'\n{model}: seconds (share of the call)')
    print(f'{"phase":48}' + ''.join(f'{f"{w}x{h}":>18}' for h, w in runs))
    for name in names:
        seconds = [run['phases'].get(name, 0.0) for run in runs.values()]
        print(f'{name:48}' + ''.join(f'{s:9.3f} ({100 * s / run["total"]:3.0f} %)'
                                     for s, run in zip(seconds, runs.values())))
    print(f'{"whole call":48}' + ''.join(f'{run["total"]:9.3f}         ' for run in runs.values()))
    print(f'{"nuclei / peak MiB":48}' + ''.join(
        f'{run["nuclei"]:8d} / {run["peak_mib"]:6.0f} ' for run in runs.values()))


def print_ratios(models: List[str], shapes: list, totals: dict, rounds: int) -> None:
    """Each model's median whole call over the rounds, and the first model's over it."""
    print(f'\nwhole call, median of {rounds} rounds (x: {models[0]} / model, times faster)')
    print(f'{"model":48}' + ''.join(f'{f"{w}x{h}":>18}' for h, w in shapes))
    medians = {key: float(np.median(seconds)) for key, seconds in totals.items()}
    for index, model in enumerate(models):
        cells = [f'{medians[index, shape]:8.3f} ({medians[0, shape] / medians[index, shape]:4.2f}x)'
                 for shape in shapes]
        print(f'{model[-48:]:48}' + ''.join(f'{cell:>18}' for cell in cells))


if __name__ == '__main__':
    main()
