"""Post-processing of predicted instances: no overlaps, dilation, minimum area.

The metric, the exporter, the TTA model and :class:`NucleusMaskRCNN` all call
:func:`instances_to_label_map`, so what is scored is what is submitted. Work is
done on label maps (``H x W``, one int per pixel); dense ``K x H x W`` masks are
built only where MMDetection's data samples need them.
"""
from typing import Iterable, Optional, Tuple

import cv2
import numpy as np
import torch
from scipy import ndimage


def instances_to_label_map(masks, scores=None, min_area: int = 0,
                           score_thr: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """Turn (possibly overlapping) instance masks into a label map.

    A contested pixel goes to the higher-scoring instance (ties: lower
    index). Instances whose remaining area is below ``min_area`` are dropped.

    Args:
        masks: ``N x H x W`` boolean array or tensor.
        scores: ``N`` scores (``None``: all equal).
        min_area: smallest area, in pixels, an instance keeps after overlap
            resolution.
        score_thr: instances scoring below it are ignored.

    Returns:
        ``(label_map, kept)``: an ``H x W`` int32 map whose label ``k`` is
        input instance ``kept[k - 1]``; labels are 1..len(kept) in decreasing
        score order.
    """
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    n = masks.shape[0]
    scores = np.zeros(n) if scores is None else np.asarray(
        scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
    order = np.argsort(-scores, kind='stable')
    order = order[scores[order] >= score_thr]
    # Highest score first: a pixel keeps the first instance that claims it.
    label_map = masks_to_label_map((masks[idx] for idx in order), masks.shape[1:])
    return relabel(label_map, order, min_area)


def masks_to_label_map(masks: Iterable[np.ndarray], shape: Tuple[int, int]) -> np.ndarray:
    """The ``H x W`` int32 label map of masks given one at a time (a stack, a generator).

    Label ``k`` is the ``k``-th mask; a pixel in several masks goes to the first
    (first wins: the repo's one rule). Labels of masks left without a pixel stay
    unused (:func:`relabel` compacts them).
    """
    label_map = np.zeros(tuple(shape), dtype=np.int32)
    for k, mask in enumerate(masks, start=1):
        label_map[np.asarray(mask, bool) & (label_map == 0)] = k
    return label_map


def relabel(label_map: np.ndarray, ids: np.ndarray,
            min_area: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Drop labels under ``min_area`` and renumber the rest 1..K in order.

    Args:
        label_map: map whose label ``k`` stands for ``ids[k - 1]``.
        ids: per-label payload (an instance index, say).
        min_area: smallest area kept.

    Returns:
        The compacted map and the payload of the labels kept.
    """
    ids = np.asarray(ids)
    areas = np.bincount(label_map.ravel(), minlength=len(ids) + 1)[1:len(ids) + 1]
    lut, keep = relabel_table(areas, min_area)
    return lut[label_map], ids[keep]


def relabel_table(areas: np.ndarray, min_area: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`relabel`'s look-up table from the labels' ``areas`` (label ``k`` at
    ``areas[k - 1]``; a map too large for memory counts them block by block).

    Returns:
        ``(lut, keep)``: ``lut[old] = new`` (0: dropped) and the mask of labels kept.
    """
    keep = (areas > 0) & (areas >= max(min_area, 1))
    lut = np.zeros(len(areas) + 1, dtype=np.int32)
    lut[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut, keep


def dilate_label_map(label_map: np.ndarray, radius: int) -> np.ndarray:
    """Grow every instance by ``radius`` pixels into background only.

    Overlap-safe: a pixel already owned never changes owner, and a background
    pixel reached by several instances goes to the highest label (a
    deterministic choice).
    """
    if radius <= 0 or not label_map.any():
        return label_map
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    # float32 holds labels exactly up to 2**24.
    grown = cv2.dilate(label_map.astype(np.float32), kernel).astype(np.int32)
    return np.where(label_map == 0, grown, label_map)


def label_map_to_masks(label_map: np.ndarray, num: Optional[int] = None) -> np.ndarray:
    """``K x H x W`` boolean masks from a label map with labels 1..K."""
    num = int(label_map.max()) if num is None else num
    if num == 0:
        return np.zeros((0, ) + label_map.shape, dtype=bool)
    return label_map[None] == np.arange(1, num + 1, dtype=label_map.dtype)[:, None, None]


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight ``x1 y1 x2 y2`` boxes (exclusive ends) of ``N x H x W`` masks."""
    n = masks.shape[0]
    boxes = np.zeros((n, 4), dtype=np.float32)
    if n == 0:
        return boxes
    rows, cols = masks.any(2), masks.any(1)
    has = rows.any(1)
    h, w = masks.shape[1:]
    boxes[:, 0] = np.where(has, cols.argmax(1), 0)
    boxes[:, 1] = np.where(has, rows.argmax(1), 0)
    boxes[:, 2] = np.where(has, w - cols[:, ::-1].argmax(1), 0)
    boxes[:, 3] = np.where(has, h - rows[:, ::-1].argmax(1), 0)
    return boxes


def overlap_table(a: np.ndarray, b: np.ndarray, num_a: int, num_b: int) -> np.ndarray:
    """``(num_a + 1) x (num_b + 1)`` pixel counts: ``[i, j]`` pixels are ``i`` in ``a`` and
    ``j`` in ``b`` (row and column 0: background). One ``bincount``, as StarDist's
    ``label_overlap``: the one pixel-pair count IoUs, consensus links and splits come from."""
    return np.bincount(a.ravel().astype(np.int64) * (num_b + 1) + b.ravel(),
                       minlength=(num_a + 1) * (num_b + 1)).reshape(num_a + 1, num_b + 1)


def label_overlap(a: np.ndarray, b: np.ndarray):
    """``(label_a, label_b, intersection)`` of every pair of labels that share pixels.

    Pairs come sorted by ``label_a`` then ``label_b``; background (0) is never in a pair.
    From :func:`overlap_table` while it is small; else sparse (many labels on both sides).
    """
    both = (a > 0) & (b > 0)
    if not both.any():
        return (np.zeros(0, np.int64), ) * 3
    na, nb, a, b = int(a.max()), int(b.max()), a[both], b[both]
    if (na + 1) * (nb + 1) <= 8 * a.size:  # a small table: counting beats sorting
        table = overlap_table(a, b, na, nb)[1:, 1:]
        la, lb = np.nonzero(table)
        return la + 1, lb + 1, table[la, lb]
    codes, inter = np.unique(a.astype(np.int64) * (nb + 1) + b, return_counts=True)
    return codes // (nb + 1), codes % (nb + 1), inter


def label_map_iou(a: np.ndarray, b: np.ndarray, num_a: Optional[int] = None,
                  num_b: Optional[int] = None) -> np.ndarray:
    """IoU of every instance of label map ``a`` with every instance of ``b``.

    From :func:`overlap_table` (the size of the answer): no per-pair loop.

    Returns:
        ``num_a x num_b`` float array (labels 1..num_a by 1..num_b).
    """
    num_a = int(a.max()) if num_a is None else num_a
    num_b = int(b.max()) if num_b is None else num_b
    if num_a == 0 or num_b == 0:
        return np.zeros((num_a, num_b))
    joint = overlap_table(a, b, num_a, num_b)
    inter = joint[1:, 1:].astype(np.float64)
    union = joint[1:, :].sum(1)[:, None] + joint[:, 1:].sum(0)[None, :] - inter
    return inter / np.maximum(union, 1)


def _area_weights(src0: int, src1: int, dst0: int, dst1: int, ratio: float) -> np.ndarray:
    """``(dst1 - dst0) x (src1 - src0)``: the share of each destination pixel that
    each source pixel covers (``ratio``: source pixels per destination pixel)."""
    lo = np.arange(dst0, dst1, dtype=np.float64)[:, None] * ratio
    src = np.arange(src0, src1, dtype=np.float64)[None, :]
    overlap = np.minimum(lo + ratio, src + 1) - np.maximum(lo, src)
    return np.clip(overlap, 0, None) / ratio


def resize_labels(label_map: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """``label_map`` resized to ``shape``; labels that vanish are simply absent.

    Enlarging: each pixel takes the label under its centre (centre-aligned nearest
    neighbour). Shrinking: each pixel takes the label that covers most of its area,
    or background if background covers more (the mode of the area, not one sampled
    point: nearest-neighbour sampling shifts outlines by up to half a source pixel and
    keeps or drops thin parts by chance, which costs small nuclei most of their IoU).
    """
    h, w = label_map.shape
    shape = (int(shape[0]), int(shape[1]))
    if shape == (h, w):
        return label_map.astype(np.int32, copy=False)
    if shape[0] >= h and shape[1] >= w:
        rows = (2 * np.arange(shape[0]) + 1) * h // (2 * shape[0])  # exact integer centres
        cols = (2 * np.arange(shape[1]) + 1) * w // (2 * shape[1])
        return label_map[rows[:, None], cols[None, :]].astype(np.int32, copy=False)
    ry, rx = h / shape[0], w / shape[1]
    best = np.zeros(shape, np.float64)   # the largest label share of each pixel
    total = np.zeros(shape, np.float64)  # all labels' share
    out = np.zeros(shape, np.int32)
    for lab, box in enumerate(ndimage.find_objects(label_map), start=1):
        if box is None:
            continue
        (y0, y1), (x0, x1) = (box[0].start, box[0].stop), (box[1].start, box[1].stop)
        dy0, dy1 = int(y0 // ry), min(shape[0], int(np.ceil(y1 / ry)))
        dx0, dx1 = int(x0 // rx), min(shape[1], int(np.ceil(x1 / rx)))
        mask = (label_map[box] == lab).astype(np.float64)
        share = _area_weights(y0, y1, dy0, dy1, ry) @ mask @ _area_weights(x0, x1, dx0, dx1, rx).T
        region = (slice(dy0, dy1), slice(dx0, dx1))
        wins = share > best[region]
        best[region][wins] = share[wins]
        out[region][wins] = lab
        total[region] += share
    out[best <= 1.0 - total] = 0
    return out
