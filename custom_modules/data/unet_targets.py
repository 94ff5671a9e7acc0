"""Pixel targets of the contour-aware U-Nets, made from instance masks.

:class:`UNetTargets` runs after every geometric augmentation (zoom, crop,
flips, rotations), so the Mask R-CNN training pipeline feeds a U-Net unchanged.
All targets of a pixel travel in one ``uint8`` map, one bit each, as
MMDetection's ``gt_seg_map`` (``PackDetInputs`` packs it into
``gt_sem_seg``; flips and crops never see it because it is made last):

- ``nucleus``: inside any nucleus;
- ``contour``: the inner rim of every nucleus (``contour_width`` pixels);
- ``boundary``: the "adjacent boundary": nucleus pixels within
  ``boundary_width`` of another nucleus (the rim only where nuclei touch);
- ``marker``: the nucleus shrunk by ``marker_margin`` (every nucleus keeps
  at least its innermost pixel), the seeds of the watershed;
- ``gap``: background pixels within ``gap_width`` of two nuclei, which the
  loss weights up (Ronneberger et al.'s weight map).
"""
from typing import Dict

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from scipy import ndimage

from custom_modules.structures.label_ops import masks_to_label_map

TARGET_BITS: Dict[str, int] = dict(nucleus=1, contour=2, boundary=4, marker=8, gap=16)


def neighbour_labels(label_map: np.ndarray, radius: int):
    """Largest and smallest non-zero label within ``radius`` of each pixel.

    Returns:
        ``(high, low)``; where both are non-zero and differ, at least two
        nuclei lie within the radius.
    """
    size = 2 * radius + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    as_float = label_map.astype(np.float32)  # exact up to 2**24 labels
    high = cv2.dilate(as_float, kernel)
    big = np.float32(2**24)
    low = cv2.erode(np.where(label_map > 0, as_float, big), kernel)
    return high, np.where(low == big, 0, low)


def inner_rim(label_map: np.ndarray, width: int) -> np.ndarray:
    """Nucleus pixels within ``width`` of another label or of background."""
    high, low = neighbour_labels(label_map, width)
    size = 2 * width + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    touches_bg = cv2.erode((label_map > 0).astype(np.uint8), kernel) == 0
    return (label_map > 0) & (touches_bg | (high != low))


def markers(label_map: np.ndarray, margin: int) -> np.ndarray:
    """Each nucleus shrunk by ``margin`` pixels; at least its deepest pixel."""
    fg = label_map > 0
    if not fg.any():
        return fg
    # Distance to the nearest pixel of another label or background.
    separated = fg & ~inner_rim(label_map, 1)
    dist = ndimage.distance_transform_edt(separated)
    out = dist >= margin
    num = int(label_map.max())
    has = np.bincount(label_map[out], minlength=num + 1) > 0
    deepest = ndimage.maximum_position(dist + fg, label_map, np.arange(1, num + 1))
    for lab, pos in enumerate(deepest, start=1):
        if not has[lab] and label_map[pos] == lab:
            out[pos] = True
    return out


def encode_targets(label_map: np.ndarray, contour_width: int = 2, boundary_width: int = 2,
                   marker_margin: int = 2, gap_width: int = 3) -> np.ndarray:
    """The bit-coded ``uint8`` target map of a label map (see the module)."""
    fg = label_map > 0
    high, low = neighbour_labels(label_map, boundary_width)
    boundary = fg & (high != low) & (low > 0)
    if gap_width != boundary_width:
        high, low = neighbour_labels(label_map, gap_width)
    gap = ~fg & (high != low) & (low > 0)
    code = fg * TARGET_BITS['nucleus']
    code |= inner_rim(label_map, contour_width) * TARGET_BITS['contour']
    code |= boundary * TARGET_BITS['boundary']
    code |= markers(label_map, marker_margin) * TARGET_BITS['marker']
    code |= gap * TARGET_BITS['gap']
    return code.astype(np.uint8)


def decode_targets(code, names) -> list:
    """Per-name boolean targets (arrays or tensors) of a bit-coded map."""
    return [(code & TARGET_BITS[name]) > 0 for name in names]


@TRANSFORMS.register_module()
class UNetTargets(BaseTransform):
    """Make the U-Net's targets from ``gt_masks`` into ``gt_seg_map``.

    Args:
        contour_width: rim width of the ``contour`` target, pixels.
        boundary_width: how close two nuclei are for ``boundary`` pixels.
        marker_margin: how far markers stay from a nucleus's edge.
        gap_width: background pixels this close to two nuclei are ``gap``.
    """

    def __init__(self, contour_width: int = 2, boundary_width: int = 2, marker_margin: int = 2,
                 gap_width: int = 3) -> None:
        for name, value in (('contour_width', contour_width), ('boundary_width', boundary_width),
                            ('gap_width', gap_width)):
            if value < 1:
                raise ValueError(f'{name} must be >= 1, got {value}')
        self.widths = dict(contour_width=contour_width, boundary_width=boundary_width,
                           marker_margin=marker_margin, gap_width=gap_width)

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        label_map = np.zeros((h, w), np.int32)
        masks = results.get('gt_masks')
        if masks is not None and len(masks):
            dense = masks.to_ndarray() if hasattr(masks, 'to_ndarray') else np.asarray(masks)
            label_map = masks_to_label_map(dense, (h, w))
        results['gt_seg_map'] = encode_targets(label_map, **self.widths)
        return results

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v}' for k, v in self.widths.items())
        return f'{self.__class__.__name__}({args})'
