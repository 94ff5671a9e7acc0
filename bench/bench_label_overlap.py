"""label_overlap (the one pixel-pair count) against the two counts it replaced.

    python bench/bench_label_overlap.py [--reps 20]

Issue 27 made ``label_map_iou`` (the metric's) and the consensus's pair counts one
function, :func:`custom_modules.structures.label_ops.label_overlap`. The baselines, run
beside it: the metric's former dense ``bincount`` over all pixels, and the consensus's
former ``np.unique`` over the overlapping pixels. Prints seconds per call, ratios, and
whether the results are equal.
"""
import argparse
import time

import numpy as np

from custom_modules.structures.label_ops import label_map_iou, label_overlap


def dense_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The metric's former IoU: one bincount over every pixel pair."""
    num_a, num_b = int(a.max()), int(b.max())
    joint = np.bincount(a.ravel().astype(np.int64) * (num_b + 1) + b.ravel(),
                        minlength=(num_a + 1) * (num_b + 1)).reshape(num_a + 1, num_b + 1)
    inter = joint[1:, 1:].astype(np.float64)
    union = joint[1:, :].sum(1)[:, None] + joint[:, 1:].sum(0)[None, :] - inter
    return inter / np.maximum(union, 1)


def unique_overlaps(a: np.ndarray, b: np.ndarray):
    """The consensus's former pair count: np.unique over the overlapping pixels."""
    both = (a > 0) & (b > 0)
    nb = int(b.max()) + 1
    codes, inter = np.unique(a[both].astype(np.int64) * nb + b[both], return_counts=True)
    return codes // nb, codes % nb, inter


def disc_maps(num: int, shape, nuclei: int, seed: int):
    """Label maps of random discs (radius 4-11), each painted in its box (first wins)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-11:12, -11:12]
    maps = []
    for _ in range(num):
        label = np.zeros((shape[0] + 22, shape[1] + 22), np.int32)
        for k in range(1, nuclei + 1):
            cy, cx, r = rng.integers(0, shape[0]), rng.integers(0, shape[1]), rng.integers(4, 12)
            box = label[cy:cy + 23, cx:cx + 23]
            box[(yy ** 2 + xx ** 2 <= r * r) & (box == 0)] = k
        maps.append(np.ascontiguousarray(label[11:-11, 11:-11]))
    return maps


def timed(fn, pairs, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        for a, b in pairs:
            fn(a, b)
    return (time.perf_counter() - t0) / (reps * len(pairs))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--reps', type=int, default=20)
    args = parser.parse_args()
    for shape, nuclei, count in (((128, 128), 15, 50), ((512, 512), 150, 10),
                                 ((1024, 1024), 600, 3)):
        maps = disc_maps(2 * count, shape, nuclei, seed=3)
        pairs = [(maps[i], np.roll(maps[i + count], 2, 0)) for i in range(count)]
        pairs = [(a, np.where(b > 0, b, np.roll(a, 3, 1))) for a, b in pairs]  # overlapping
        same = all(np.array_equal(label_map_iou(a, b), dense_iou(a, b)) for a, b in pairs)
        same_pairs = all(all(np.array_equal(x, y) for x, y in
                             zip(label_overlap(a, b), unique_overlaps(a, b))) for a, b in pairs)
        t_new, t_dense = timed(label_map_iou, pairs, args.reps), timed(dense_iou, pairs, args.reps)
        t_pairs, t_unique = (timed(label_overlap, pairs, args.reps),
                             timed(unique_overlaps, pairs, args.reps))
        print(f'{shape[0]}x{shape[1]}, ~{nuclei} nuclei: label_map_iou {t_new * 1e3:.3f} ms vs '
              f'former dense {t_dense * 1e3:.3f} ms (ratio {t_dense / t_new:.2f}), equal {same}; '
              f'label_overlap {t_pairs * 1e3:.3f} ms vs former unique {t_unique * 1e3:.3f} ms '
              f'(ratio {t_unique / t_pairs:.2f}), equal {same_pairs}', flush=True)


if __name__ == '__main__':
    main()
