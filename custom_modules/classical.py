"""A classical nucleus segmenter, the baseline the deep model must beat.

Otsu threshold on the grey image (inverted when the background is bright),
hole filling, then a distance-transform watershed that splits touching nuclei.
"""
import cv2
import numpy as np
from scipy import ndimage

from .image_io import to_8bit


def segment_nuclei(img: np.ndarray, min_area: int = 10, peak_ratio: float = 0.5) -> np.ndarray:
    """Label map of the nuclei of one image (any DSB format).

    Args:
        img: decoded image (grey, BGR or BGRA, 8 or 16 bit).
        min_area: smaller objects are dropped.
        peak_ratio: a watershed seed is a distance-transform local maximum of
            at least this fraction of its component's largest distance.

    Returns:
        ``H x W`` int32 label map (0 = background).
    """
    img = to_8bit(img)
    grey = img if img.ndim == 2 else cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2GRAY)
    if np.median(grey) > 127:  # brightfield / histology: dark nuclei on a bright background
        grey = 255 - grey
    grey = cv2.GaussianBlur(grey, (3, 3), 0)
    _, fg = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fg = ndimage.binary_fill_holes(fg).astype(np.uint8)
    dist = cv2.distanceTransform(fg, cv2.DIST_L2, 5)
    comps, n = ndimage.label(fg)
    if n == 0:
        return np.zeros(grey.shape, np.int32)
    comp_max = ndimage.maximum(dist, comps, np.arange(1, n + 1))
    local_max = (dist == cv2.dilate(dist, np.ones((5, 5), np.uint8))) & (dist > 0)
    seeds = local_max & (dist >= peak_ratio * np.asarray([0] + list(comp_max))[comps])
    markers, _ = ndimage.label(cv2.dilate(seeds.astype(np.uint8), np.ones((3, 3), np.uint8)))
    markers = markers.astype(np.int32)
    markers[fg == 0] = -1  # never flood the background
    cv2.watershed(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), markers)
    label = np.where(markers > 0, markers, 0)
    areas = np.bincount(label.ravel())
    label[areas[label] < min_area] = 0
    _, label = np.unique(label, return_inverse=True)
    return label.reshape(grey.shape).astype(np.int32)
