"""Joining the predictions of overlapping tiles into one label map.

The join of :func:`~custom_modules.inference.tiling.predict_tiled` and of the
whole-slide path (:mod:`custom_modules.inference.slide`). Each tile owns a
*core* (the image cut at the middle of every overlap); per tile, every
predicted nucleus is either *whole* (it touches no tile border inside the
image) or *cut*. Then:

- pieces of two tiles are linked when they agree where both tiles saw the
  image (same class, mask IoU > 0.5 in the tiles' common area): they are one
  nucleus. A linked group gives one nucleus: the whole piece of the tile whose
  core holds its centroid (else the largest whole piece), or, when every tile
  cut it, the union of its pieces if one of their tiles' cores holds the
  union's centroid; a nucleus larger than the overlap thus still comes out
  whole, one seen whole by two tiles comes out once, and the cut views of a
  nucleus that the tile holding it whole did not find give no fragments;
- an unlinked piece is kept by the tile whose core holds its centroid;
- the kept nuclei are pasted by decreasing score (a contested pixel stays
  with the higher score); one that would keep no more than half of its pixels
  goes: two tiles saw the same nuclei differently (one blob in one, two
  nuclei in the other), and the better-scored view stands whole instead of
  leaving slivers of the other.
"""
import ctypes
import ctypes.util
import functools
from typing import Callable, Iterable, Iterator, List, NamedTuple, Optional

import numpy as np
from scipy import ndimage

from custom_modules.structures.label_map import LabelMapPrediction
from custom_modules.structures.label_ops import label_map_iou
from custom_modules.structures.tile_grid import core_holds
from custom_modules.structures.union_find import UnionFind


@functools.lru_cache(maxsize=None)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's ``malloc_trim``, or ``None`` on other C libraries."""
    try:
        return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6').malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Hand freed heap memory back to the system (glibc; a no-op elsewhere).

    Each tile frees a few large temporaries while the small nucleus crops it
    keeps stay live between them; glibc then keeps the freed pages, and the
    resident memory grew by ~25 MB per U-Net tile (0.45 -> 1.32 GiB over 40
    tiles of a 2,500 x 2,500 image) until this ran after every tile.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


TileMap = Callable[[Callable[[np.ndarray], LabelMapPrediction], Iterable[np.ndarray]],
                   Iterable[LabelMapPrediction]]


class Piece(NamedTuple):
    """One nucleus as one tile saw it (global coordinates)."""
    y0: int
    x0: int
    mask: np.ndarray  # bool crop of its bounding box
    score: float
    cls: int
    tile: int
    cut: bool
    in_core: bool


def tile_pieces(pred: LabelMapPrediction, tile_id: int, origin, image_shape, core) -> List[Piece]:
    """Split one tile's prediction into pieces, flagging cut and owned ones
    (``core = (y0, y1, x0, x1)``, global)."""
    ty, tx = origin
    th, tw = pred.label_map.shape
    pieces = []
    for k, sl in enumerate(ndimage.find_objects(pred.label_map), start=1):
        if sl is None:
            continue
        mask = pred.label_map[sl] == k
        ys, xs = np.nonzero(mask)
        y0, x0 = sl[0].start, sl[1].start
        cut = ((y0 == 0 and ty > 0) or (x0 == 0 and tx > 0)
               or (sl[0].stop == th and ty + th < image_shape[0])
               or (sl[1].stop == tw and tx + tw < image_shape[1]))
        cy, cx = ty + y0 + ys.mean(), tx + x0 + xs.mean()
        pieces.append(Piece(ty + y0, tx + x0, mask, float(pred.scores[k - 1]),
                            int(pred.classes[k - 1]), tile_id, bool(cut),
                            core_holds(core, cy, cx)))
    return pieces


def common_iou(a: Piece, b: Piece, rect_a, rect_b) -> float:
    """Mask IoU of two pieces inside the area both tiles saw."""
    y0, x0 = max(rect_a[0], rect_b[0]), max(rect_a[1], rect_b[1])
    y1, x1 = min(rect_a[2], rect_b[2]), min(rect_a[3], rect_b[3])
    if y0 >= y1 or x0 >= x1:
        return 0.0

    def window(p: Piece) -> np.ndarray:
        out = np.zeros((y1 - y0, x1 - x0), bool)
        sy0, sx0 = max(p.y0, y0), max(p.x0, x0)
        sy1, sx1 = min(p.y0 + p.mask.shape[0], y1), min(p.x0 + p.mask.shape[1], x1)
        if sy0 < sy1 and sx0 < sx1:
            out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = p.mask[sy0 - p.y0:sy1 - p.y0,
                                                               sx0 - p.x0:sx1 - p.x0]
        return out

    return float(label_map_iou(window(a).view(np.uint8), window(b).view(np.uint8), 1, 1)[0, 0])


def link_groups(pieces: List[Piece], rects) -> List[List[int]]:
    """Groups of pieces of one nucleus: pieces of two tiles that agree where both tiles saw.

    Only pieces inside the area of another tile can have a partner, and only
    that tile's pieces are compared with them.
    """
    sets = UnionFind(len(pieces))
    if pieces:
        rects = np.asarray(rects)
        boxes = np.array([(p.y0, p.x0, p.y0 + p.mask.shape[0], p.x0 + p.mask.shape[1])
                          for p in pieces])
        tiles = np.array([p.tile for p in pieces])
        classes = np.array([p.cls for p in pieces])
        by_tile = {t: np.flatnonzero(tiles == t) for t in np.unique(tiles)}
        for i, b in enumerate(boxes):
            seen_by = np.flatnonzero((rects[:, 0] < b[2]) & (rects[:, 2] > b[0])
                                     & (rects[:, 1] < b[3]) & (rects[:, 3] > b[1]))
            for t in seen_by[seen_by > tiles[i]]:  # each pair of tiles once
                js = by_tile.get(t, np.zeros(0, int))
                bj = boxes[js]
                near = js[(bj[:, 0] < b[2]) & (bj[:, 2] > b[0]) & (bj[:, 1] < b[3])
                          & (bj[:, 3] > b[1]) & (classes[js] == classes[i])]
                for j in near:
                    if common_iou(pieces[i], pieces[j], rects[tiles[i]], rects[t]) > 0.5:
                        sets.union(i, j)
    return sets.groups()


def resolve_group(group: List[int], pieces: List[Piece], cores):
    """One nucleus from a group: ``(y0, x0, mask, score, cls)`` or ``None``.

    A lone piece stands if its centre lies in its tile's core; a group with an
    uncut piece gives the owner's (else the largest) uncut view; a group of cut
    pieces only gives their union when its centre lies in the core of one of
    their tiles: else the tile that held it whole saw no nucleus there, and the
    union of views cut by their borders would be a fragment.
    """
    members = [pieces[i] for i in group]
    if len(members) == 1:
        p = members[0]
        return (p.y0, p.x0, p.mask, p.score, p.cls) if p.in_core else None
    whole = [p for p in members if not p.cut]
    if whole:  # prefer the owner, else the largest whole view
        p = max(whole, key=lambda q: (q.in_core, q.mask.sum(), q.score, -q.y0, -q.x0))
        return p.y0, p.x0, p.mask, p.score, p.cls
    y0, x0 = min(p.y0 for p in members), min(p.x0 for p in members)
    y1 = max(p.y0 + p.mask.shape[0] for p in members)
    x1 = max(p.x0 + p.mask.shape[1] for p in members)
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    areas = np.array([p.mask.sum() for p in members], np.float64)
    for p in members:
        mask[p.y0 - y0:p.y0 - y0 + p.mask.shape[0], p.x0 - x0:p.x0 - x0 + p.mask.shape[1]] |= p.mask
    ys, xs = np.nonzero(mask)
    cy, cx = y0 + ys.mean(), x0 + xs.mean()
    if not any(core_holds(cores[t], cy, cx) for t in {p.tile for p in members}):
        return None
    score = float((areas * [p.score for p in members]).sum() / areas.sum())
    return y0, x0, mask, score, members[0].cls


def serial_map(predict: Callable[[np.ndarray], LabelMapPrediction],
               crops: Iterable[np.ndarray]) -> Iterator[LabelMapPrediction]:
    """Predict tiles one after another in this process (one tile in memory at a time)."""
    return map(predict, crops)


def join_tiles(predict, crops: Iterable[np.ndarray], rects, cores, shape,
               map_tiles: TileMap = serial_map) -> list:
    """Predict the tiles (``crops`` in the order of ``rects``) and join them: the nuclei
    ``(y0, x0, mask, score, cls)`` to paste, by decreasing score (ties by position,
    independent of tile order)."""
    pieces = []
    for k, pred in enumerate(map_tiles(predict, crops)):
        y0, x0, y1, x1 = rects[k]
        pred = pred.check()
        if pred.label_map.shape != (y1 - y0, x1 - x0):
            raise ValueError(f'the predictor returned a {pred.label_map.shape} label map '
                             f'for a {(y1 - y0, x1 - x0)} tile')
        pieces += tile_pieces(pred, k, (y0, x0), shape, cores[k])
        del pred
        release_freed_memory()
    nuclei = [n for n in (resolve_group(g, pieces, cores) for g in link_groups(pieces, rects))
              if n]
    nuclei.sort(key=lambda n: (-n[3], n[0], n[1]))
    return nuclei


def paste_nuclei(nuclei: list, label_map: np.ndarray, touched=None) -> None:
    """Paste ``nuclei`` (in order) into a zero ``label_map`` as labels 1..N; one that
    would keep no more than half of its pixels goes (another tile's better-scored view
    of it, merged or split otherwise, stands). ``touched(rows, cols)``: called after
    each paste (a disk-backed map releases its pages)."""
    for k, (y0, x0, mask, _, _) in enumerate(nuclei, start=1):
        window = label_map[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]]
        free = mask & (window == 0)
        if 2 * np.count_nonzero(free) > np.count_nonzero(mask):
            window[free] = k
        if touched is not None:
            touched(*mask.shape)
