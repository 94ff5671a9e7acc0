"""Per-nucleus measurements of a label map on the original image (regionprops).

Intensities are measured on the grey original as read, in its own bit depth
(a 16-bit image gives 0..65535 values), never on the 8-bit model input.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
from skimage.measure import regionprops_table

from custom_modules.data.datasets import DEFAULT_CLASSES
from custom_modules.structures.label_map import LabelMapPrediction

MEASUREMENT_COLUMNS = (
    'label', 'class', 'score', 'area', 'centroid_y', 'centroid_x',
    'bbox_min_row', 'bbox_min_col', 'bbox_max_row', 'bbox_max_col',
    'equivalent_diameter', 'eccentricity', 'solidity', 'mean_intensity', 'max_intensity')

# skimage's names -> ours (the columns of the measurements CSV).
_PROPERTIES = {
    'label': 'label', 'area': 'area', 'centroid-0': 'centroid_y', 'centroid-1': 'centroid_x',
    'bbox-0': 'bbox_min_row', 'bbox-1': 'bbox_min_col', 'bbox-2': 'bbox_max_row',
    'bbox-3': 'bbox_max_col', 'equivalent_diameter_area': 'equivalent_diameter',
    'eccentricity': 'eccentricity', 'solidity': 'solidity', 'intensity_mean': 'mean_intensity',
    'intensity_max': 'max_intensity'}


def grey_intensity(img: np.ndarray) -> np.ndarray:
    """Luminance (ITU-R 601) of an image in cv2's channel order, in its own units.

    Grey images are returned as float64 unchanged; alpha is ignored.
    """
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] >= 3:  # strips of rows: no float64 copy of all channels
        out, weights = np.empty(img.shape[:2]), np.array([0.114, 0.587, 0.299])
        rows = max(1, (1 << 20) // max(1, img.shape[1]))
        for y in range(0, img.shape[0], rows):
            out[y:y + rows] = img[y:y + rows, :, :3].astype(np.float64) @ weights
        return out
    if img.ndim == 3:
        img = img[:, :, 0]
    return img.astype(np.float64)


def class_name(index: int, class_names: Sequence[str]) -> str:
    """The name of class ``index`` (its number when the names do not cover it)."""
    return class_names[index] if 0 <= index < len(class_names) else str(index)


def measure_nuclei(pred: LabelMapPrediction, image: np.ndarray,
                   class_names: Optional[Sequence[str]] = DEFAULT_CLASSES) -> List[Dict]:
    """One dict per nucleus (columns :data:`MEASUREMENT_COLUMNS`), ordered by label.

    Args:
        pred: the image's prediction.
        image: the original image as read (grey or cv2 channel order, any depth),
            the same height and width as the label map.
        class_names: names of the class indices; ``class`` holds the name.

    Bounding boxes are ``min_row, min_col`` inclusive, ``max_row, max_col``
    exclusive (skimage's convention); centroids and boxes are in pixels.
    """
    label_map = np.asarray(pred.label_map)
    if tuple(image.shape[:2]) != label_map.shape:
        raise ValueError(f'image is {image.shape[:2]}, label map {label_map.shape}')
    table = regionprops_table(label_map, intensity_image=grey_intensity(image),
                              properties=('label', 'area', 'centroid', 'bbox',
                                          'equivalent_diameter_area', 'eccentricity', 'solidity',
                                          'intensity_mean', 'intensity_max'))
    rows = []
    for i, label in enumerate(table['label']):
        row = {ours: table[theirs][i].item() for theirs, ours in _PROPERTIES.items()}
        row['class'] = class_name(int(pred.classes[label - 1]), class_names or ())
        row['score'] = float(pred.scores[label - 1])
        rows.append({column: row[column] for column in MEASUREMENT_COLUMNS})
    return rows
