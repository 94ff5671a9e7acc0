"""The tile grid of tiled inference: where tiles start and end, and their cores.

Tiles overlap by at least ``overlap`` pixels; each tile's *core* is cut at
the middle of every overlap, so the cores tile the image exactly. An image
thinner than a tile is cut in strips of its full thickness (:func:`tile_shape`).
"""
from typing import List, Tuple

import numpy as np


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> List[int]:
    """Evenly spread tile starts covering ``length``, overlapping >= ``overlap``.

    Starts are multiples of ``align`` (the network's deepest stride), so a
    tile's feature grid is the whole image's; the last tile then runs to
    ``length`` and may be up to ``align - 1`` px longer than ``tile``.
    """
    if length <= tile:  # one tile (a strip's thickness: no overlap needed)
        return [0]
    if tile <= overlap:
        raise ValueError(f'tile size {tile} must exceed the overlap {overlap}')
    step = max(1, tile - overlap - (align - 1))  # snapping down shrinks an overlap < align
    n = int(np.ceil((length - tile) / step)) + 1
    return sorted({round(k * (length - tile) / (n - 1)) // align * align for k in range(n)})


def tile_ends(starts: List[int], tile: int, length: int) -> List[int]:
    """Where each tile ends along one axis (the last one at ``length``)."""
    return [min(s + tile, length) for s in starts[:-1]] + [length]


def padded(length: int, align: int) -> int:
    """``length`` rounded up to a multiple of ``align`` (what the network computes on)."""
    return -(-length // max(align, 1)) * max(align, 1)


def tile_shape(height: int, width: int, tile: int, align: int = 1) -> Tuple[int, int]:
    """Tile height and width for an image: ``tile x tile``, or for an image thinner
    than a tile, strips of its full thickness holding a square tile's pixels.

    A 3 x 512 tile, padded to the network's stride, costs about what a
    512 x 512 one does; a 3 x 100,000 strip is cut into ~26 tiles of 3 x 4,096
    (align 64) instead of ~310 of 3 x 512.
    """
    if height < tile < width:
        return height, max(tile, tile * tile // padded(height, align))
    if width < tile < height:
        return max(tile, tile * tile // padded(width, align)), width
    return tile, tile


def core_bounds(starts: List[int], tile: int, length: int) -> List[Tuple[int, int]]:
    """Each tile's core along one axis: cut at the middle of each overlap."""
    ends = tile_ends(starts, tile, length)
    cuts = [0] + [(starts[k + 1] + ends[k]) // 2 for k in range(len(starts) - 1)] + [length]
    return list(zip(cuts[:-1], cuts[1:]))


def core_holds(core, cy: float, cx: float) -> bool:
    """Whether the point ``(cy, cx)`` lies in ``core = (y0, y1, x0, x1)``."""
    return core[0] <= cy < core[1] and core[2] <= cx < core[3]


def tile_layout(h: int, w: int, tile: int, overlap: int, align: int = 1):
    """``(rects, cores)`` of the tiles of an ``h x w`` image, row by row:
    ``(y0, x0, y1, x1)`` and ``(y0, y1, x0, x1)`` each."""
    th, tw = tile_shape(h, w, tile, align)
    ys, xs = tile_starts(h, th, overlap, align), tile_starts(w, tw, overlap, align)
    yends, xends = tile_ends(ys, th, h), tile_ends(xs, tw, w)
    ycores, xcores = core_bounds(ys, th, h), core_bounds(xs, tw, w)
    rects = [(ty, tx, yends[iy], xends[ix]) for iy, ty in enumerate(ys)
             for ix, tx in enumerate(xs)]
    cores = [ycores[iy] + xcores[ix] for iy in range(len(ys)) for ix in range(len(xs))]
    return rects, cores
