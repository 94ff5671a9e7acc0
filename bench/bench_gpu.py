"""Seconds per image of the shipped models on a device (a lent GPU), one view and TTA.

    python bench/bench_gpu.py --device cuda --images .gpu_images --out OUT [--budget-s 420]
    python bench/bench_gpu.py --prepare-images .gpu_images   # here: pick the 20 images

Each model (``--models``, default the three shipped ones) predicts every image of
``--images`` whole (no tiling), as it is (``diameter=None``), once with one view and once
with TTA, after one warm-up image per model and mode; the table gives the mean and median
seconds per image beside the CPU figures of BENCHMARKS.md (``speed_by_size`` in each
model's ``metrics.json``: one real image of 256 px and of 1024 px on 2 CPU threads).
``gpu_bench.txt`` and ``gpu_bench.json`` are rewritten in ``--out`` after every model and
mode, so a run cut short still leaves what it timed; ``--budget-s`` splits the wall-clock
time between models and modes, and a pair over its share stops early (the table says how
many images it timed). ``bench/gpu/run_gpu_bench.sh`` runs this on the lent machine.
"""
import argparse
import glob
import json
import os
import platform
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'bench'))

from bench_models import cpu_name, seconds  # noqa: E402
from custom_modules.data.image_io import read_any_image  # noqa: E402
from custom_modules.inference import model_zoo  # noqa: E402
from custom_modules.io.atomic import write_atomic  # noqa: E402

MODELS = ['nucleiseg_mrcnn', 'nucleiseg_unet', 'nucleiseg_ensemble']
FOLD_JSON = os.path.join(ROOT, 'data', 'generated', 'dsb', 'val_fold0.json')
DSB = os.path.join(ROOT, '..', 'shared', 'dsb2018', 'stage1_train')
SAMPLE = os.path.join(ROOT, 'data', 'sample', 'stage1_train')


def prepare_images(folder: str, count: int = 20, fold_json: str = FOLD_JSON,
                   data: str = DSB) -> List[str]:
    """Copy ``count`` fold-0 validation images, evenly spaced in the list sorted by area
    (sizes in the fold's proportions, the smallest and the largest included), into
    ``folder``; without the data set, the bundled sample's images repeated."""
    import shutil
    os.makedirs(folder, exist_ok=True)
    if os.path.isfile(fold_json) and os.path.isdir(data):
        with open(fold_json) as f:
            images = sorted(json.load(f)['images'],
                            key=lambda im: (im['height'] * im['width'], im['file_name']))
        picks = [images[int(i)] for i in np.linspace(0, len(images) - 1, count).round()]
        sources = [os.path.join(data, im['file_name']) for im in picks]
    else:
        sample = sorted(glob.glob(os.path.join(SAMPLE, '*', 'images', '*.png')))
        sources = [sample[i % len(sample)] for i in range(count)]
    written = []
    for i, src in enumerate(sources):
        dst = os.path.join(folder, f'{i:02d}_{os.path.basename(src)}')
        if not os.path.isfile(dst):
            shutil.copyfile(src, dst + '.tmp')
            os.replace(dst + '.tmp', dst)
        written.append(dst)
    return written


def device_name(device: str) -> str:
    """The GPU's name (or the CPU's) and the torch build."""
    name = (torch.cuda.get_device_name(torch.device(device))
            if torch.device(device).type == 'cuda' else cpu_name())
    return f'{name}; torch {torch.__version__}, Python {platform.python_version()}'


def time_pair(model: str, tta: bool, images: List[np.ndarray], device: str,
              deadline: float) -> dict:
    """Seconds per image of one model and mode: one warm-up image, then each image once."""
    from custom_modules.inference.inferencer import NucleusInferencer
    start = time.perf_counter()
    inferencer = NucleusInferencer(model, tta=tta, tile=0, diameter=None, device=device)
    inferencer.predict(images[0])
    warm = time.perf_counter() - start
    times = []
    for img in images:
        if times and time.perf_counter() > deadline:
            break
        times.append(seconds(inferencer, img, 1, warm_up=False))
    return dict(images=len(times), mean=float(np.mean(times)), median=float(np.median(times)),
                total=float(np.sum(times)), load_and_warm_up=round(warm, 2),
                per_image=[round(t, 4) for t in times])


def cpu_figures(model: str) -> Dict[str, dict]:
    """BENCHMARKS.md's CPU seconds of a shipped model (its metrics.json), or {}."""
    speed = model_zoo.read_metrics(model_zoo.model_folder(model)).get('speed_by_size', {})
    return speed.get('seconds', {})


def table(results: dict) -> str:
    """The report: s/image on the device beside the CPU figures."""
    lines = [f'device: {results["device"]}', f'images: {results["images"]} '
             f'({results["sizes"]}), whole, diameter none; mean / median s per image after '
             'one warm-up image', 'CPU: BENCHMARKS.md "Shipped models" (one image of 256 px '
             'and of 1024 px, 2 CPU threads; metrics.json speed_by_size)', '',
             f'{"model":20}{"mode":>6}{"n":>4}{"mean s":>9}{"median s":>10}'
             f'{"CPU 256 px":>12}{"CPU 1024 px":>13}']
    for model, modes in results['models'].items():
        cpu = cpu_figures(model)
        for mode, got in modes.items():
            key = 'tta' if mode == 'tta' else 'one_view'
            cells = ''.join(f'{cpu[s][key]:>{w}.2f}' if s in cpu else f'{"-":>{w}}'
                            for s, w in (('256', 12), ('1024', 13)))
            lines.append(f'{model:20}{mode:>6}{got["images"]:>4}{got["mean"]:>9.3f}'
                         f'{got["median"]:>10.3f}{cells}')
    return '\n'.join(lines) + '\n'


def write(results: dict, out: str) -> None:
    """gpu_bench.txt and gpu_bench.json in ``out``, each whole or not at all."""
    os.makedirs(out, exist_ok=True)
    write_atomic(os.path.join(out, 'gpu_bench.txt'), table(results).encode())
    write_atomic(os.path.join(out, 'gpu_bench.json'),
                 (json.dumps(results, indent=2) + '\n').encode())


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--prepare-images', metavar='FOLDER',
                        help='copy the images to time into FOLDER, then stop')
    parser.add_argument('--count', type=int, default=20, help='images to prepare')
    parser.add_argument('--device', default='cuda', help="torch device (default 'cuda')")
    parser.add_argument('--images', default='.gpu_images', help='folder of PNG images')
    parser.add_argument('--limit', type=int, help='time only the first N images')
    parser.add_argument('--models', nargs='+', default=MODELS)
    parser.add_argument('--modes', nargs='+', default=['one', 'tta'], choices=['one', 'tta'])
    parser.add_argument('--budget-s', type=float, default=420.0,
                        help='wall-clock seconds for all timing, shared out evenly')
    parser.add_argument('--out', default='work_dirs/gpu_bench')
    args = parser.parse_args(argv)
    if args.prepare_images:
        paths = prepare_images(args.prepare_images, args.count)
        print(f'{len(paths)} images in {args.prepare_images}')
        return
    from custom_modules.engine.cli_checks import check_device
    try:
        check_device(args.device)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    paths = sorted(glob.glob(os.path.join(args.images, '*.png')))[:args.limit]
    if not paths:
        raise SystemExit(f'{args.images}: no PNG images (bench/gpu/prepare.sh makes them)')
    for model in args.models:
        model_zoo.model_folder(model)  # an unknown name stops here, before any work
    images = [read_any_image(p) for p in paths]
    sizes = sorted({f'{im.shape[0]}x{im.shape[1]}' for im in images})
    results = dict(device=device_name(args.device), images=len(images), sizes=', '.join(sizes),
                   names=[os.path.basename(p) for p in paths], models={},
                   command='python bench/bench_gpu.py ' + ' '.join(
                       argv if argv is not None else sys.argv[1:]))
    pairs = [(m, mode) for mode in args.modes for m in args.models]  # every one view first
    start = time.perf_counter()
    for done, (model, mode) in enumerate(pairs):
        share = (args.budget_s - (time.perf_counter() - start)) / (len(pairs) - done)
        got = time_pair(model, mode == 'tta', images, args.device,
                        time.perf_counter() + share)
        results['models'].setdefault(model, {})[mode] = got
        print(f'{model} {mode}: {got["images"]} images, mean {got["mean"]:.3f} s, '
              f'median {got["median"]:.3f} s (load + warm-up {got["load_and_warm_up"]} s)',
              flush=True)
        write(results, args.out)
    print(table(results), end='')


if __name__ == '__main__':
    main()
