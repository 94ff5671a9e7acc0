"""Tiled inference against whole-image inference, and its cost on very large images.

    python bench/bench_tiling.py real CONFIG CKPT [--tile 512] [--overlap PX] [--max-per-img N]
                                 [--min-side 1000] [--mosaics 4] [--ann-file COCO_JSON]
    python bench/bench_tiling.py synthetic CONFIG CKPT --side 2000 [--tile 512] [--keep-freed]

``real``: on the validation images (the config's test set, or --ann-file) whose
longer side is at least --min-side,
and on 2000 x 2000 mosaics of validation images of one kind (ground truth
shifted with them), the score of whole-image and of tiled prediction with the
same checkpoint. ``synthetic``: a bright-discs image of the given side (tens of
thousands of nuclei at 10,000), predicted by tiles; prints seconds per
megapixel and the process's peak memory (run one side per process);
``--keep-freed`` skips handing freed heap memory back after each tile, the
baseline of ``tile_join.release_freed_memory``.
"""
import argparse
import resource
import time

import cv2
import numpy as np
from mmengine.registry import init_default_scope
from mmdet.registry import DATASETS, MODELS

import custom_modules  # noqa: F401
from custom_modules.data.datasets import config_input_mode
from custom_modules.data.image_io import read_image_file
from custom_modules.data.intensity import to_model_input
from custom_modules.evaluation.metric import score_label_maps
from custom_modules.inference import tile_join
from custom_modules.inference.builder import load_weights, predictor_cfg
from custom_modules.inference.model_zoo import load_config
from custom_modules.structures.label_map import gt_label_map


def build(cfg, checkpoint, tile):
    init_default_scope('mmdet')
    whole = MODELS.build(predictor_cfg(cfg, tile=0)).eval()
    load_weights(whole, checkpoint)
    tiled = MODELS.build(predictor_cfg(cfg, tile=tile)).eval()
    load_weights(tiled, checkpoint)
    return whole, tiled


def mosaics(dataset, mode, side=2000, count=4):
    """2000 x 2000 canvases of validation images of one kind, packed row by row."""
    if count <= 0:
        return []
    by_kind = {}
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        by_kind.setdefault(info.get('stratum', '').split('/')[0], []).append(i)
    out = []
    for kind, indices in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
        raw = np.zeros((side, side, 3), np.uint8)
        truth = np.zeros((side, side), np.int32)
        y = x = row_h = 0
        for n, i in enumerate(indices):
            data = dataset[i]
            img = to_model_input(read_image_file(data['data_samples'].img_path), 'rgb')
            if n == 0:  # the gaps get the background of the kind, not black
                raw[:] = np.median(img.reshape(-1, 3), 0).astype(np.uint8)
            gt = gt_label_map(data['data_samples'])
            h, w = gt.shape
            if x + w > side:
                y, x, row_h = y + row_h, 0, 0
            if y + h > side:
                break
            raw[y:y + h, x:x + w] = img
            truth[y:y + h, x:x + w] = np.where(gt > 0, gt + truth.max(), 0)
            x, row_h = x + w, max(row_h, h)
        if truth.max() > 0:
            out.append((f'mosaic_{kind}', to_model_input(raw, mode), truth))
        if len(out) == count:
            break
    return out


def run_real(args, cfg):
    whole, tiled = build(cfg, args.checkpoint, args.tile)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    cases = []
    for i in range(len(dataset)):
        if max(dataset.get_data_info(i)['height'], dataset.get_data_info(i)['width']) >= args.min_side:
            data = dataset[i]
            cases.append((data['data_samples'].img_path.split('/')[-1][:12],
                          data['inputs'].permute(1, 2, 0).numpy(), gt_label_map(data['data_samples'])))
    cases += mosaics(dataset, config_input_mode(cfg), count=args.mosaics)
    print(f'{"image":24}{"size":>12}{"gt":>7}{"whole":>8}{"n":>6}{"tiled":>8}{"n":>6}'
          f'{"s whole":>9}{"s tiled":>9}')
    scores = []
    for name, img, truth in cases:
        t0 = time.perf_counter()
        a = whole.predict_label_map(img)
        t1 = time.perf_counter()
        b = tiled.predict_label_map(img)
        t2 = time.perf_counter()
        sa, sb = score_label_maps(truth, a.label_map).mean(), score_label_maps(truth, b.label_map).mean()
        scores.append((name.startswith('mosaic'), sa, sb))
        print(f'{name:24}{"x".join(map(str, img.shape[:2])):>12}{int(truth.max()):7d}{sa:8.4f}'
              f'{len(a):6d}{sb:8.4f}{len(b):6d}{t1 - t0:9.1f}{t2 - t1:9.1f}')
    for mosaic, label in ((False, 'real images'), (True, 'mosaics')):
        rows = [(a, b) for m, a, b in scores if m == mosaic]
        if rows:
            a, b = np.mean(rows, 0)
            print(f'mean over {len(rows)} {label}: whole {a:.4f}, tiled {b:.4f}, '
                  f'difference {b - a:+.4f}')


def synthetic_image(side, seed=0, spacing=48):
    """Bright discs (radius 4-12) on a dark noisy background, one per spacing^2 cell or so."""
    rng = np.random.default_rng(seed)
    img = rng.normal(30, 5, (side, side)).clip(0, 255).astype(np.uint8)
    n = (side // spacing) ** 2
    for cy, cx, r in zip(rng.integers(0, side, n), rng.integers(0, side, n), rng.integers(4, 13, n)):
        cv2.circle(img, (int(cx), int(cy)), int(r), 200, -1)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), n


def run_synthetic(args, cfg):
    init_default_scope('mmdet')
    model = MODELS.build(predictor_cfg(cfg, tile=args.tile)).eval()
    load_weights(model, args.checkpoint)
    if args.keep_freed:
        tile_join.release_freed_memory = lambda: None
    img, drawn = synthetic_image(args.side)
    img = to_model_input(img, config_input_mode(cfg))
    start = time.perf_counter()
    pred = model.predict_label_map(img)
    seconds = time.perf_counter() - start
    megapixels = args.side * args.side / 1e6
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB -> GiB
    print(f'side {args.side}: {drawn} discs drawn, {len(pred)} nuclei found, {seconds:.1f} s, '
          f'{seconds / megapixels:.2f} s/MP, peak RSS {peak:.2f} GiB (tile {args.tile}'
          f"{', freed memory kept' if args.keep_freed else ''})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('mode', choices=['real', 'synthetic'])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--overlap', type=int, help="tile overlap in px (default: the config's)")
    parser.add_argument('--max-per-img', type=int,
                        help='raise the detector cap (the config: 512) for both arms, so that '
                        'whole-image prediction is not capped where tiles are not')
    parser.add_argument('--min-side', type=int, default=1000)
    parser.add_argument('--mosaics', type=int, default=4)
    parser.add_argument('--ann-file', help="labelled COCO JSON to take the images from "
                        "(default: the config's test set)")
    parser.add_argument('--side', type=int, default=2000)
    parser.add_argument('--keep-freed', action='store_true',
                        help='do not hand freed heap memory back after each tile (baseline)')
    args = parser.parse_args(argv)
    cfg = load_config(args.config)  # a shipped model's config.py gets its thresholds.json
    if args.overlap is not None:
        cfg.tile = dict(cfg.get('tile', None) or {}, overlap=args.overlap)
    if args.ann_file is not None:
        cfg.test_dataloader.dataset.ann_file = args.ann_file
    if args.max_per_img is not None:
        cfg.model.test_cfg.rcnn.max_per_img = args.max_per_img
    (run_real if args.mode == 'real' else run_synthetic)(args, cfg)


if __name__ == '__main__':
    main()
