"""Nucleus size: scores of validation images rescaled by 0.5-3x, as they are and with ``auto``.

    python bench/bench_diameter.py CONFIG CKPT [--scales 0.5 1 2 3] [--every K]
                                   [--offset I] [--max-side PX] [--keep-range LO HI] [--train-diameter PX]
                                   [--ann-file COCO_JSON] [--skip-none]

Each validation image of the config's test set (every K-th, and only those whose
longer side is at most --max-side) and its ground truth are resized by each scale
(labels by :func:`resize_labels`: the label covering most of each pixel when
shrinking, centre-aligned nearest neighbour when enlarging), then predicted with
``--diameter none`` (the model sees the rescaled image as it is) and ``--diameter
auto`` (the size probe estimates the diameter and the image is rescaled to the
training size; ``--skip-none`` leaves the first out, its columns NaN). The ``native``
column is the unscaled image's prediction resized like the truth: what a rescaling
that lost no image detail would score. Prints, per scale, the three mean scores, the
mean estimated diameter and seconds per image (predicting, and the estimate alone),
then the scores per image kind. Per image it prints both scores at each scale and the
estimated diameter.
"""
import argparse
import time
from collections import defaultdict

import numpy as np
from mmengine.registry import init_default_scope
from mmdet.registry import DATASETS, MODELS

import custom_modules  # noqa: F401
from custom_modules.evaluation.metric import score_label_maps
from custom_modules.inference.builder import load_weights, predictor_cfg
from custom_modules.inference.diameter import resize
from custom_modules.structures.label_map import gt_label_map
from custom_modules.structures.label_ops import resize_labels
from custom_modules.inference.model_zoo import load_config


def scaled_case(img, truth, scale):
    """The image and its ground truth resized by ``scale``."""
    img = np.ascontiguousarray(resize(img, scale))
    return img, resize_labels(truth, img.shape[:2])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--scales', type=float, nargs='+', default=[0.5, 1.0, 2.0, 3.0])
    parser.add_argument('--every', type=int, default=1, help='every K-th validation image')
    parser.add_argument('--offset', type=int, default=0, help='starting from this one')
    parser.add_argument('--keep-range', type=float, nargs=2,
                        help="diameters predicted as they are (default: the model's)")
    parser.add_argument('--train-diameter', type=float,
                        help="the diameter images are rescaled to (default: the model's)")
    parser.add_argument('--max-side', type=int, default=100000,
                        help='skip images whose longer side exceeds this (before scaling)')
    parser.add_argument('--ann-file', help='another labelled COCO JSON than the test set')
    parser.add_argument('--skip-none', action='store_true',
                        help="predict with 'auto' only (the slow 'none' at 3x left out)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)  # fills the fields of configs/_base_
    if args.ann_file:
        cfg.test_dataloader.dataset.ann_file = args.ann_file
    init_default_scope('mmdet')
    plain = MODELS.build(predictor_cfg(cfg)).eval()
    load_weights(plain, args.checkpoint)
    if args.keep_range:
        cfg.nucleus_size = dict(cfg.get('nucleus_size', {}), keep_range=args.keep_range)
    if args.train_diameter:
        cfg.nucleus_size = dict(cfg.get('nucleus_size', {}), train_diameter=args.train_diameter)
    auto = MODELS.build(predictor_cfg(cfg, diameter='auto')).eval()
    load_weights(auto, args.checkpoint)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    picked = [i for i in range(args.offset, len(dataset), args.every)
              if max(dataset.get_data_info(i)['height'], dataset.get_data_info(i)['width'])
              <= args.max_side]
    print(f'{len(picked)} of {len(dataset)} images; scales {args.scales}')
    rows = defaultdict(list)  # scale -> (kind, plain, auto, diameter, s plain, s auto, s estimate)
    for n, i in enumerate(picked):
        data = dataset[i]
        kind = dataset.get_data_info(i).get('stratum', '?').split('/')[0]
        img0, truth0 = data['inputs'].permute(1, 2, 0).numpy(), gt_label_map(data['data_samples'])
        native0 = plain.predict_label_map(np.ascontiguousarray(img0)).label_map
        for scale in args.scales:
            img, truth = scaled_case(img0, truth0, scale)
            t0 = time.perf_counter()
            a = None if args.skip_none else plain.predict_label_map(img)
            t1 = time.perf_counter()
            factor = auto.factor(img)
            t2 = time.perf_counter()
            reuse = factor == 1.0 and a is not None  # the same call when 1
            b = a if reuse else auto.predict_label_map(img)
            t3 = time.perf_counter()
            if b is not a:  # predict_label_map estimated again: count it once
                t3 -= t2 - t1
            native = resize_labels(native0, truth.shape)
            rows[scale].append((kind, np.nan if a is None else
                                score_label_maps(truth, a.label_map).mean(),
                                score_label_maps(truth, b.label_map).mean(),
                                auto.last_estimate.diameter,
                                np.nan if a is None else t1 - t0, t3 - t1, t2 - t1,
                                score_label_maps(truth, native).mean()))
        print(f'{n + 1}/{len(picked)} {data["data_samples"].img_path.split("/")[-1][:12]} '
              + ' '.join(f'x{s:g}: {rows[s][-1][1]:.3f}->{rows[s][-1][2]:.3f} '
                         f'(d {rows[s][-1][3]:.0f})' for s in args.scales), flush=True)
    print(f'\n{"scale":>6}{"none":>8}{"auto":>8}{"native":>8}{"diam":>7}{"s none":>8}'
          f'{"s auto":>8}{"s est":>8}')
    for scale in args.scales:
        _, a, b, d, ta, tb, te, nat = zip(*rows[scale])
        print(f'{scale:6g}{np.mean(a):8.4f}{np.mean(b):8.4f}{np.mean(nat):8.4f}'
              f'{np.nanmedian(d):7.1f}{np.mean(ta):8.2f}{np.mean(tb):8.2f}{np.mean(te):8.2f}')
    kinds = sorted({r[0] for r in rows[args.scales[0]]})
    print('\nper kind (none -> auto): ' + ', '.join(
        f'{k} ({sum(r[0] == k for r in rows[args.scales[0]])})' for k in kinds))
    for scale in args.scales:
        print(f'{scale:6g} ' + '  '.join(
            f'{k}: {np.mean([r[1] for r in rows[scale] if r[0] == k]):.4f} -> '
            f'{np.mean([r[2] for r in rows[scale] if r[0] == k]):.4f}' for k in kinds))


if __name__ == '__main__':
    main()
