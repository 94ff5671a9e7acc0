"""Kaggle RLE encode/decode: vectorised module vs a per-pixel Python loop.

    python bench/bench_rle.py [--images 200] [--loop-masks 200]

Prints seconds per mask for both and the ratio; checks both give the same strings.
"""
import argparse
import time

import numpy as np

from custom_modules.structures.rle import encode_label_map, kaggle_decode


def loop_encode(mask: np.ndarray) -> str:
    """The per-pixel loop common in competition notebooks."""
    pixels, runs, prev = mask.T.flatten(), [], 0
    for i, v in enumerate(pixels, start=1):
        if v and not prev:
            runs += [i, 0]
        if v:
            runs[-1] += 1
        prev = v
    return ' '.join(map(str, runs))


def loop_decode(text: str, shape) -> np.ndarray:
    flat = np.zeros(shape[0] * shape[1], bool)
    values = text.split()
    for s, n in zip(values[0::2], values[1::2]):
        for i in range(int(s) - 1, int(s) - 1 + int(n)):
            flat[i] = True
    return flat.reshape(shape[::-1]).T


def synthetic_maps(num, shape=(256, 256), nuclei=30, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    maps = []
    for _ in range(num):
        label = np.zeros(shape, np.int32)
        for k in range(1, nuclei + 1):
            cy, cx, r = rng.integers(0, shape[0]), rng.integers(0, shape[1]), rng.integers(4, 12)
            label[((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (label == 0)] = k
        maps.append(label)
    return maps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--images', type=int, default=200)
    parser.add_argument('--loop-masks', type=int, default=200)
    args = parser.parse_args(argv)
    if args.images < 1 or args.loop_masks < 1:
        parser.error('--images and --loop-masks must be at least 1')
    maps = synthetic_maps(args.images)
    t0 = time.perf_counter()
    encoded = [encode_label_map(m) for m in maps]
    t_enc = time.perf_counter() - t0
    strings = [(s, m.shape) for e, m in zip(encoded, maps) for s in e.values()]
    t0 = time.perf_counter()
    for s, shape in strings:
        kaggle_decode(s, shape)
    t_dec = time.perf_counter() - t0
    n = len(strings)
    subset = [(lab, m) for e, m in zip(encoded, maps) for lab in e][:args.loop_masks]
    t0 = time.perf_counter()
    loop_strings = [loop_encode(m == lab) for lab, m in subset]
    t_loop_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s, (lab, m) in zip(loop_strings, subset):
        loop_decode(s, m.shape)
    t_loop_dec = time.perf_counter() - t0
    same = all(s == encoded[[id(x) for x in maps].index(id(m))][lab]
               for s, (lab, m) in zip(loop_strings, subset))
    k = len(subset)
    print(f'masks: {n} vectorised ({args.images} label maps 256x256), {k} with the loop')
    print(f'encode: vectorised {1e3 * t_enc / n:.3f} ms/mask (whole label maps), loop '
          f'{1e3 * t_loop_enc / k:.2f} ms/mask, ratio {t_loop_enc / k / (t_enc / n):.0f}x')
    print(f'decode: vectorised {1e3 * t_dec / n:.3f} ms/mask, loop {1e3 * t_loop_dec / k:.2f} '
          f'ms/mask, ratio {t_loop_dec / k / (t_dec / n):.0f}x')
    print(f'same strings: {same}')


if __name__ == '__main__':
    main()
