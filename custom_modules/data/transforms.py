"""The 3rd-place solution's training augmentations as MMDetection transforms.

Every geometric transform ends in :func:`sync_instances`: boxes become the
tight boxes of their masks and instances smaller than ``min_area`` pixels
(empty ones included) are dropped, so after any chain of them every box is
its mask's tight box, no instance is empty and masks stay binary. Randomness
comes from ``np.random``, so a fixed seed gives the same result.
"""
from typing import Optional, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks

from custom_modules.data.intensity import shift_channels
from custom_modules.structures.label_ops import masks_to_boxes


def sync_instances(results: dict, min_area: int = 1) -> dict:
    """Recompute tight boxes from masks and drop instances under ``min_area``."""
    if 'gt_masks' not in results:
        return results
    h, w = results['img'].shape[:2]
    masks = np.asarray(results['gt_masks'].masks).astype(bool)
    keep = masks.sum(axis=(1, 2)) >= max(min_area, 1)
    masks = masks[keep]
    results['gt_masks'] = BitmapMasks(masks.astype(np.uint8), h, w)
    results['gt_bboxes'] = HorizontalBoxes(masks_to_boxes(masks))
    for key in ('gt_bboxes_labels', 'gt_ignore_flags'):
        if key in results:
            results[key] = results[key][keep]
    results['img_shape'] = (h, w)
    return results


def crop_results(results: dict, y0: int, x0: int, h: int, w: int, min_area: int) -> dict:
    """Crop image and masks to a window; cut nuclei keep their visible part."""
    results['img'] = np.ascontiguousarray(results['img'][y0:y0 + h, x0:x0 + w])
    if 'gt_masks' in results:
        results['gt_masks'] = BitmapMasks(results['gt_masks'].masks[:, y0:y0 + h, x0:x0 + w], h, w)
    return sync_instances(results, min_area)


def random_window(shape: Tuple[int, int], size: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """A uniformly placed window of ``size`` (clipped to ``shape``): y0, x0, h, w."""
    h, w = min(size[0], shape[0]), min(size[1], shape[1])
    return np.random.randint(shape[0] - h + 1), np.random.randint(shape[1] - w + 1), h, w


def window_around(box: np.ndarray, shape: Tuple[int, int],
                  size: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """A window like :func:`random_window`, uniform among those holding ``box``.

    ``box`` is ``x1 y1 x2 y2`` (exclusive ends); along a side where it does
    not fit, the window holds its centre instead.
    """
    h, w = min(size[0], shape[0]), min(size[1], shape[1])
    starts = []
    for lo, hi, n, full in ((box[1], box[3], h, shape[0]), (box[0], box[2], w, shape[1])):
        lo, hi = int(lo), int(hi)
        if hi - lo > n:
            lo = hi = (lo + hi) // 2
        starts.append(np.random.randint(max(0, hi - n), min(lo, full - n) + 1))
    return starts[0], starts[1], h, w


def instance_window(masks: np.ndarray, shape: Tuple[int, int], size: Tuple[int, int],
                    retries: int) -> Tuple[int, int, int, int]:
    """A random window (see :func:`random_window`) that holds an instance if any.

    Up to ``1 + retries`` uniform draws; when all miss every instance, the
    window is placed around a randomly chosen instance instead, so sparse
    images (a few nuclei in a corner of a large field) still give nuclei.
    """
    window = random_window(shape, size)
    if not len(masks):
        return window
    for attempt in range(retries + 1):
        y0, x0, h, w = window
        if masks[:, y0:y0 + h, x0:x0 + w].any():
            return window
        if attempt < retries:
            window = random_window(shape, size)
    k = np.random.randint(len(masks))
    box = masks_to_boxes(masks[k:k + 1].astype(bool, copy=False))[0]
    return window_around(box, shape, size)


@TRANSFORMS.register_module()
class RandomZoom(BaseTransform):
    """Strong zoom in/out with a random aspect-ratio change.

    A scale ``s`` and aspect ``a`` are drawn log-uniformly; the image is
    resized by ``s * sqrt(a)`` horizontally and ``s / sqrt(a)`` vertically.

    Args:
        scale_range: (min, max) zoom.
        aspect_range: (min, max) width/height stretch.
        pre_crop: if set, first cut a random source window that covers this
            output size after zooming (a later crop of that size then sees
            the same distribution while large images are never zoomed whole);
            the window holds a nucleus whenever the image has one (see
            :func:`instance_window`).
        min_area: smallest instance kept, in output pixels.
    """

    def __init__(self, scale_range: Tuple[float, float] = (0.5, 2.0),
                 aspect_range: Tuple[float, float] = (0.75, 1.33),
                 pre_crop: Optional[Tuple[int, int]] = None, min_area: int = 4) -> None:
        self.scale_range = tuple(scale_range)
        self.aspect_range = tuple(aspect_range)
        self.pre_crop = pre_crop
        self.min_area = min_area

    def transform(self, results: dict) -> dict:
        s = np.exp(np.random.uniform(*np.log(self.scale_range)))
        a = np.exp(np.random.uniform(*np.log(self.aspect_range)))
        sx, sy = s * np.sqrt(a), s / np.sqrt(a)
        if self.pre_crop is not None:
            size = (int(np.ceil(self.pre_crop[0] / sy)) + 1, int(np.ceil(self.pre_crop[1] / sx)) + 1)
            masks = results['gt_masks'].masks if 'gt_masks' in results else np.zeros((0, 1, 1))
            window = instance_window(masks, results['img'].shape[:2], size, 0)
            results = crop_results(results, *window, 1)
        h, w = results['img'].shape[:2]
        new_h, new_w = max(1, int(round(h * sy))), max(1, int(round(w * sx)))
        results['img'] = cv2.resize(results['img'], (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        if 'gt_masks' in results:
            results['gt_masks'] = results['gt_masks'].resize((new_h, new_w))
        old = np.asarray(results.get('scale_factor', (1.0, 1.0)), dtype=np.float64)
        results['scale_factor'] = tuple(old * (new_w / w, new_h / h))
        return sync_instances(results, self.min_area)


@TRANSFORMS.register_module()
class InstanceSafeRandomCrop(BaseTransform):
    """Random crop that keeps every instance consistent.

    Args:
        crop_size: (h, w); a smaller image is kept whole along that side.
        min_area: fragments smaller than this (pixels) are dropped.
        max_instances: keep at most this many instances (a random subset),
            like Matterport's ``MAX_GT_INSTANCES``; ``None`` keeps all.
        retries: extra uniform draws to find a crop holding an instance
            before the crop is placed around a random instance.
    """

    def __init__(self, crop_size: Tuple[int, int] = (512, 512), min_area: int = 4,
                 max_instances: Optional[int] = None, retries: int = 10) -> None:
        self.crop_size = tuple(crop_size)
        self.min_area = min_area
        self.max_instances = max_instances
        self.retries = retries

    def transform(self, results: dict) -> dict:
        masks = results['gt_masks'].masks if 'gt_masks' in results else np.zeros((0, 1, 1))
        window = instance_window(masks, results['img'].shape[:2], self.crop_size, self.retries)
        results = crop_results(results, *window, self.min_area)
        n = len(results.get('gt_masks', []))
        if self.max_instances is not None and n > self.max_instances:
            keep = np.sort(np.random.choice(n, self.max_instances, replace=False))
            results['gt_masks'] = results['gt_masks'][keep]
            for key in ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags'):
                if key in results:
                    results[key] = results[key][keep]
        return results


@TRANSFORMS.register_module()
class RandomRot90(BaseTransform):
    """Rotate by a random multiple of 90 degrees (pixel-exact).

    Args:
        prob: probability of rotating at all (then k is 1, 2 or 3).
    """

    def __init__(self, prob: float = 0.75) -> None:
        self.prob = prob

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        k = np.random.randint(1, 4)
        results['img'] = np.ascontiguousarray(np.rot90(results['img'], k))
        if 'gt_masks' in results:
            h, w = results['img'].shape[:2]
            rotated = np.ascontiguousarray(np.rot90(results['gt_masks'].masks, k, axes=(1, 2)))
            results['gt_masks'] = BitmapMasks(rotated, h, w)
        return sync_instances(results)


@TRANSFORMS.register_module()
class RandomFreeRotate(BaseTransform):
    """Rotate by a random angle about the centre; masks warped the same way.

    The output keeps the input size (corners are cut and filled with
    ``border_value``); masks use nearest-neighbour warping.

    Args:
        max_angle: angle drawn uniformly in [-max_angle, max_angle] degrees.
        prob: probability of rotating.
        min_area: fragments smaller than this are dropped.
        border_value: fill of the uncovered corners.
    """

    def __init__(self, max_angle: float = 45.0, prob: float = 0.5, min_area: int = 4,
                 border_value: int = 0) -> None:
        self.max_angle = max_angle
        self.prob = prob
        self.min_area = min_area
        self.border_value = border_value

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        angle = np.random.uniform(-self.max_angle, self.max_angle)
        h, w = results['img'].shape[:2]
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
        results['img'] = cv2.warpAffine(results['img'], matrix, (w, h), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT,
                                        borderValue=(self.border_value, ) * 3)
        if 'gt_masks' in results:
            warped = [cv2.warpAffine(m, matrix, (w, h), flags=cv2.INTER_NEAREST)
                      for m in results['gt_masks'].masks]
            results['gt_masks'] = BitmapMasks(
                np.stack(warped) if warped else np.zeros((0, h, w), np.uint8), h, w)
        return sync_instances(results, self.min_area)


@TRANSFORMS.register_module()
class RandomChannelShift(BaseTransform):
    """Add a random offset to each colour channel (clipped to 0..255).

    Args:
        max_shift: offsets drawn uniformly in [-max_shift, max_shift].
        prob: probability of shifting.
    """

    def __init__(self, max_shift: float = 20.0, prob: float = 0.5) -> None:
        self.max_shift = max_shift
        self.prob = prob

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        offsets = np.random.uniform(-self.max_shift, self.max_shift, results['img'].shape[2])
        results['img'] = shift_channels(results['img'], offsets)
        return results

