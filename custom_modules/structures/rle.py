"""Run-length encodings of instance masks: Kaggle strings and COCO RLE.

One implementation serves ``data_prep``, the competition metric and the
submission exporter. Everything works on *label maps* (``H x W`` integer
arrays, 0 = background, ``k`` = instance ``k``), which encode every instance of
an image in one vectorised pass.

Kaggle's format numbers pixels 1.. from top to bottom, then left to right
(column-major) and lists ``start length`` pairs with sorted, disjoint runs.
Some data sets (Sartorius) number them left to right, then top to bottom
(row-major): :func:`parse_rle` reads either into column-major runs.
COCO's compressed RLE is produced by pycocotools from the same runs.
"""
from typing import Dict, List, Tuple

import numpy as np
from pycocotools import mask as mask_utils

Runs = Tuple[np.ndarray, np.ndarray]  # 0-indexed column-major starts, lengths
INT64_MAX = int(np.iinfo(np.int64).max)
RLE_ORDERS = ('column', 'row')  # pixel numbering: top to bottom first, or left to right first


def label_map_runs(label_map: np.ndarray) -> Dict[int, Runs]:
    """Column-major runs of every non-zero label of a label map.

    Args:
        label_map: ``H x W`` integer array.

    Returns:
        ``{label: (starts, lengths)}`` with 0-indexed starts in increasing
        order; labels absent from the map are absent from the dict.
    """
    flat = np.asarray(label_map).ravel(order='F')
    if flat.size == 0:
        return {}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [flat.size])))
    values = flat[starts]
    keep = values != 0
    starts, lengths, values = starts[keep], lengths[keep], values[keep]
    order = np.argsort(values, kind='stable')
    starts, lengths, values = starts[order], lengths[order], values[order]
    labels, first = np.unique(values, return_index=True)
    bounds = np.append(first, values.size)
    return {
        int(lab): (starts[bounds[i]:bounds[i + 1]],
                   lengths[bounds[i]:bounds[i + 1]])
        for i, lab in enumerate(labels)
    }


def runs_to_kaggle(runs: Runs) -> str:
    """Format runs as a Kaggle ``EncodedPixels`` string (1-indexed)."""
    starts, lengths = runs
    pairs = np.empty(2 * len(starts), dtype=np.int64)
    pairs[0::2] = np.asarray(starts) + 1
    pairs[1::2] = lengths
    return ' '.join(map(str, pairs.tolist()))


def kaggle_encode(mask: np.ndarray) -> str:
    """Encode one binary mask as a Kaggle string ('' for an empty mask)."""
    runs = label_map_runs(np.asarray(mask).astype(bool).view(np.uint8))
    return runs_to_kaggle(runs[1]) if runs else ''


def encode_label_map(label_map: np.ndarray) -> Dict[int, str]:
    """Kaggle strings of every instance of a label map, keyed by label."""
    return {lab: runs_to_kaggle(r) for lab, r in label_map_runs(label_map).items()}


def _fits_int64(word: str) -> bool:
    """Whether ``word`` is an integer that fits in 64 bits (non-integers count as fitting)."""
    try:
        return -INT64_MAX - 1 <= int(word) <= INT64_MAX
    except ValueError:
        return True


def parse_kaggle(rle: str, shape: Tuple[int, int]) -> Runs:
    """Parse and validate a Kaggle string into 0-indexed runs.

    Raises:
        ValueError: naming what is wrong (non-integers, values out of range,
            odd count, start < 1, zero length, unsorted or overlapping runs,
            past the image end).
    """
    text = '' if rle is None else str(rle).strip()
    if text in ('', 'nan'):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    words = text.split()
    try:
        values = np.array(words, dtype=np.int64)
    except ValueError:
        raise ValueError('EncodedPixels holds a value that is not an integer') from None
    except OverflowError:
        big = next((w for w in words if not _fits_int64(w)), '?')
        raise ValueError(f'value out of range: EncodedPixels holds {big}') from None
    if values.size % 2:
        raise ValueError(f'EncodedPixels has an odd number of values ({values.size})')
    if (values[0::2] < 1).any():
        raise ValueError('EncodedPixels has a start below 1 (pixels are 1-indexed)')
    starts, lengths = values[0::2] - 1, values[1::2]
    total = int(shape[0]) * int(shape[1])
    if (lengths < 1).any():
        raise ValueError('EncodedPixels has a run of length < 1')
    wraps = lengths > INT64_MAX - starts  # start + length would not fit in 64 bits
    if wraps.any():
        i = int(np.flatnonzero(wraps)[0])
        raise ValueError(f'value out of range: EncodedPixels run {starts[i] + 1} {lengths[i]} '
                         'ends beyond 64-bit pixel numbers')
    ends = starts + lengths
    if (starts[1:] < ends[:-1]).any():
        raise ValueError('EncodedPixels runs are not sorted or overlap')
    if ends.size and ends[-1] > total:
        raise ValueError(f'EncodedPixels runs past the image end ({ends[-1]} > {total} '
                         f'pixels of a {shape[0]}x{shape[1]} image)')
    return starts, lengths


def run_indices(runs: Runs) -> np.ndarray:
    """Column-major flat indices of every pixel covered by the runs."""
    starts, lengths = np.asarray(runs[0], np.int64), np.asarray(runs[1], np.int64)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets


def runs_from_indices(indices: np.ndarray) -> Runs:
    """Runs of sorted, distinct flat pixel indices."""
    indices = np.asarray(indices, np.int64)
    if indices.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    first = np.concatenate(([0], breaks))
    return indices[first], np.diff(np.concatenate((first, [indices.size])))


def to_column_major(runs: Runs, shape: Tuple[int, int], order: str) -> Runs:
    """Column-major runs of runs whose pixels are numbered in ``order``.

    Args:
        runs: 0-indexed runs as :func:`parse_kaggle` gives them.
        shape: the image's ``(H, W)``.
        order: ``'column'`` (DSB2018: top to bottom, then left to right) or
            ``'row'`` (Sartorius: left to right, then top to bottom).

    Raises:
        ValueError: an unknown order.
    """
    if order not in RLE_ORDERS:
        raise ValueError(f'RLE order must be one of {RLE_ORDERS}, got {order!r}')
    if order == 'column':
        return runs
    rows, cols = np.divmod(run_indices(runs), int(shape[1]))
    return runs_from_indices(np.sort(cols * int(shape[0]) + rows))


def parse_rle(rle: str, shape: Tuple[int, int], order: str = 'column') -> Runs:
    """Parse and validate a string numbered in ``order`` into column-major runs.

    Raises:
        ValueError: an unknown order, or what :func:`parse_kaggle` refuses.
    """
    return to_column_major(parse_kaggle(rle, shape), shape, order)


def kaggle_decode(rle: str, shape: Tuple[int, int]) -> np.ndarray:
    """Decode a Kaggle string into a boolean ``H x W`` mask."""
    flat = np.zeros(int(shape[0]) * int(shape[1]), dtype=bool)
    flat[run_indices(parse_kaggle(rle, shape))] = True
    return flat.reshape(shape, order='F')


def runs_to_coco(runs: Runs, shape: Tuple[int, int]) -> dict:
    """Compress runs into a COCO RLE dict (``counts`` as str) via pycocotools."""
    starts, lengths = runs
    total = int(shape[0]) * int(shape[1])
    ends = np.asarray(starts) + np.asarray(lengths)
    counts = np.empty(2 * len(starts) + 1, dtype=np.int64)
    counts[0:-1:2] = np.asarray(starts) - np.concatenate(([0], ends[:-1]))
    counts[1::2] = lengths
    counts[-1] = total - (ends[-1] if len(ends) else 0)
    if counts[-1] == 0 and len(counts) > 1:
        counts = counts[:-1]  # pycocotools writes no trailing empty run
    rle = mask_utils.frPyObjects({'counts': counts.tolist(), 'size': [int(shape[0]), int(shape[1])]},
                                 int(shape[0]), int(shape[1]))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def coco_encode_label_map(label_map: np.ndarray) -> Dict[int, dict]:
    """COCO compressed RLE of every instance of a label map, keyed by label."""
    shape = label_map.shape[:2]
    return {lab: runs_to_coco(r, shape) for lab, r in label_map_runs(label_map).items()}


def coco_encode(mask: np.ndarray) -> dict:
    """COCO compressed RLE of one binary mask (``counts`` as str)."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask).astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def coco_decode(rle: dict) -> np.ndarray:
    """Decode a COCO RLE dict (compressed or not) into a boolean mask."""
    h, w = rle['size']
    if isinstance(rle['counts'], list):
        rle = mask_utils.frPyObjects(rle, h, w)
    elif isinstance(rle['counts'], str):
        rle = dict(rle, counts=rle['counts'].encode('ascii'))
    return mask_utils.decode(rle).astype(bool)


def label_map_from_runs(shape: Tuple[int, int], runs_list: List[Runs]) -> Tuple[np.ndarray, int]:
    """Paint runs into a label map (instance ``i`` gets label ``i + 1``).

    A pixel claimed twice keeps its first owner.

    Returns:
        The ``H x W`` int32 label map and the number of contested pixels.
    """
    flat = np.zeros(int(shape[0]) * int(shape[1]), dtype=np.int32)
    contested = 0
    for i, runs in enumerate(runs_list):
        idx = run_indices(runs)
        free = flat[idx] == 0
        contested += int((~free).sum())
        flat[idx[free]] = i + 1
    return flat.reshape(shape, order='F'), contested
