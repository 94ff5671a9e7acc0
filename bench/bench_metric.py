"""Competition metric: label-map bincount vs a per-pair IoU loop.

    python bench/bench_metric.py [--images 300]

Prints seconds for both, the ratio, and both scores (they must be equal).
"""
import argparse
import time

import numpy as np

from custom_modules.evaluation.metric import DEFAULT_THRESHOLDS, score_label_maps
from bench_rle import synthetic_maps


def loop_score(gt: np.ndarray, pred: np.ndarray) -> float:
    """Per-pair IoU with boolean masks, then TP/FP/FN per threshold."""
    gts = [gt == k for k in np.unique(gt) if k]
    preds = [pred == k for k in np.unique(pred) if k]
    iou = np.zeros((len(gts), len(preds)))
    for i, g in enumerate(gts):
        for j, p in enumerate(preds):
            iou[i, j] = (g & p).sum() / (g | p).sum()
    scores = []
    for t in DEFAULT_THRESHOLDS:
        match = iou > t
        tp = match.any(1).sum()
        fp, fn = len(preds) - match.any(0).sum(), len(gts) - tp
        scores.append(1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn))
    return float(np.mean(scores))


def perturb(label: np.ndarray, rng) -> np.ndarray:
    """A plausible prediction: shifted, some nuclei dropped, one false positive."""
    pred = np.roll(label, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), (0, 1))
    for k in rng.choice(np.arange(1, label.max() + 1), size=3, replace=False):
        pred[pred == k] = 0
    pred[:6, :6] = label.max() + 1
    return pred


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--images', type=int, default=300)
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error('--images must be at least 1')
    rng = np.random.default_rng(1)
    gts = synthetic_maps(args.images, shape=(128, 128), nuclei=15, seed=2)
    preds = [perturb(g, rng) for g in gts]
    t0 = time.perf_counter()
    ours = np.mean([score_label_maps(g, p).mean() for g, p in zip(gts, preds)])
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop = np.mean([loop_score(g, p) for g, p in zip(gts, preds)])
    t_loop = time.perf_counter() - t0
    print(f'images: {args.images} (128x128, ~15 nuclei)')
    print(f'metric: vectorised {t_ours:.3f} s, per-pair loop {t_loop:.2f} s, '
          f'ratio {t_loop / t_ours:.0f}x')
    print(f'score: vectorised {ours:.6f}, loop {loop:.6f}, equal: {abs(ours - loop) < 1e-12}')


if __name__ == '__main__':
    main()
