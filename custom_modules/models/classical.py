"""A classical nucleus segmenter, the baseline the deep model must beat.

The standard pipeline practitioners use on DSB2018: grey image (inverted when
the background is bright, so nuclei are always bright), optional Gaussian
smoothing, Otsu threshold, small objects removed and holes filled, then a
watershed on the negative Euclidean distance transform from markers at its
local maxima (``peak_local_max``, optionally only those standing ``h`` above
their surroundings), which splits touching nuclei. Its few parameters are
tuned on training images (``tools/classical_baseline.py --tune``).
"""
import dataclasses
import itertools
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_otsu
from skimage.morphology import h_maxima
from mmdet.registry import MODELS
from mmengine.model import BaseModel
from skimage.segmentation import relabel_sequential, watershed

from custom_modules.data.intensity import bright_background, to_8bit
from custom_modules.structures.label_map import LabelMapPrediction
from custom_modules.structures.predictor import Shape, at_shape, predict_batch


@dataclass(frozen=True)
class ClassicalParams:
    """The parameters of :func:`segment_nuclei`.

    Attributes:
        sigma: Gaussian smoothing (pixels) before Otsu; 0 for none.
        min_distance: smallest distance (pixels) between two markers, which
            is about the radius of the smallest nucleus that is split off.
        h: a marker must stand at least this high (pixels of distance) above
            the saddle to its neighbour (h-maxima); 0 keeps every peak.
        min_area: foreground blobs and final nuclei smaller than this (pixels)
            are dropped.
        compactness: compact watershed (0 = classical watershed).
    """

    # defaults: tuned on 120 images of train fold 0 (model_zoo/classical_fold0.json)
    sigma: float = 0.0
    min_distance: int = 8
    h: float = 1.0
    min_area: int = 30
    compactness: float = 0.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f'{field.name} must be a number, got {value!r}')
            if not np.isfinite(value) or value < 0:
                raise ValueError(f'{field.name} must be finite and >= 0, got {value!r}')
        if self.min_distance < 1 or int(self.min_distance) != self.min_distance:
            raise ValueError(f'min_distance must be a whole number >= 1, got {self.min_distance!r}')
        if int(self.min_area) != self.min_area:
            raise ValueError(f'min_area must be a whole number, got {self.min_area!r}')
        object.__setattr__(self, 'min_distance', int(self.min_distance))
        object.__setattr__(self, 'min_area', int(self.min_area))

    def to_dict(self) -> Dict[str, float]:
        """The fields as a plain dict (for JSON)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> 'ClassicalParams':
        """Parameters from a dict of some or all fields.

        Raises:
            ValueError: not a dict, an unknown field, or a bad value.
        """
        if not isinstance(values, dict):
            raise ValueError(f'expected an object of parameters, got {type(values).__name__}')
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f'unknown parameter(s) {", ".join(unknown)}; expected some of '
                             f'{", ".join(f.name for f in dataclasses.fields(cls))}')
        return cls(**values)


# The grid tools/classical_baseline.py --tune searches (2 x 3 x 2 x 2 = 24 combinations).
DEFAULT_GRID = dict(sigma=(0.0, 1.0), min_distance=(5, 8, 12), h=(0.0, 1.0), min_area=(15, 30))


def param_grid(grid: Dict[str, Sequence] = DEFAULT_GRID,
               base: ClassicalParams = ClassicalParams()) -> List[ClassicalParams]:
    """Every combination of ``grid``'s values, other fields from ``base``."""
    names = list(grid)
    return [dataclasses.replace(base, **dict(zip(names, values)))
            for values in itertools.product(*(grid[n] for n in names))]


def nuclei_bright(img: np.ndarray) -> np.ndarray:
    """8-bit grey image with bright nuclei: inverted when the background is bright.

    Args:
        img: decoded image (grey, BGR or BGRA, 8 or 16 bit).
    """
    img = to_8bit(img)
    if img.ndim == 3 and img.shape[2] >= 3:
        grey = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_BGR2GRAY)
    else:
        grey = img.reshape(img.shape[:2])
    return 255 - grey if bright_background(grey) else grey


def foreground(grey: np.ndarray, sigma: float) -> np.ndarray:
    """Otsu foreground (boolean) of a bright-nuclei grey image, smoothed first when sigma > 0."""
    grey = grey.astype(np.float32)
    if sigma > 0:
        grey = gaussian(grey, sigma=sigma, preserve_range=True)
    if grey.size == 0 or grey.max() - grey.min() < 1e-3:  # flat image: no nuclei
        return np.zeros(grey.shape, bool)
    return grey > threshold_otsu(grey)


def split_foreground(fg: np.ndarray, params: ClassicalParams) -> np.ndarray:
    """Label map of the nuclei of a raw foreground (distance-transform watershed).

    Returns:
        ``H x W`` int32 label map, labels 1..K (0 = background).
    """
    blobs, _ = ndimage.label(fg)
    big = np.bincount(blobs.ravel(), minlength=1) >= params.min_area
    big[0] = False
    fg = ndimage.binary_fill_holes(big[blobs])
    comps, n = ndimage.label(fg)
    if n == 0:
        return np.zeros(fg.shape, np.int32)
    dist = ndimage.distance_transform_edt(fg)
    peaks = peak_local_max(dist, min_distance=params.min_distance, labels=comps,
                           exclude_border=False)
    if params.h > 0 and len(peaks):
        peaks = peaks[h_maxima(dist, params.h)[tuple(peaks.T)] > 0]
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # every component gets a marker: its deepest point when no peak survived
    missing = np.setdiff1d(np.arange(1, n + 1), comps[tuple(peaks.T)])
    for k, pos in enumerate(ndimage.maximum_position(dist, comps, missing), start=len(peaks) + 1):
        markers[pos] = k
    label = watershed(-dist, markers, mask=fg, compactness=params.compactness)
    areas = np.bincount(label.ravel())
    label[areas[label] < params.min_area] = 0
    return relabel_sequential(label.astype(np.int32))[0]


def segment_nuclei(img: np.ndarray, params: ClassicalParams = ClassicalParams()) -> np.ndarray:
    """Label map of the nuclei of one image (any DSB format).

    Args:
        img: decoded image (grey, BGR or BGRA, 8 or 16 bit).
        params: the pipeline's parameters.

    Returns:
        ``H x W`` int32 label map, labels 1..K (0 = background).
    """
    return split_foreground(foreground(nuclei_bright(img), params.sigma), params)


@MODELS.register_module()
class ClassicalSegmenter(BaseModel):
    """:func:`segment_nuclei` as a label-map predictor (every nucleus scores 1, class 0).

    Arguments are the fields of :class:`ClassicalParams`. ``raw`` changes nothing:
    its ``min_area`` acts inside the segmentation, before the split.
    """

    def __init__(self, sigma: float = 0.0, min_distance: int = 8, h: float = 1.0,
                 min_area: int = 30, compactness: float = 0.0,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.params = ClassicalParams(sigma, min_distance, h, min_area, compactness)

    def predict_label_map(self, img: np.ndarray, out_shape: Shape = None,
                          raw: bool = False) -> LabelMapPrediction:
        """The nuclei of one image (see ``LabelMapPredictor``)."""
        label_map = segment_nuclei(img, self.params)
        n = int(label_map.max())
        return at_shape(LabelMapPrediction(label_map, np.ones(n, np.float32),
                                           np.zeros(n, np.int64)), out_shape)

    def test_step(self, data: dict) -> list:
        return predict_batch(self, data)

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        raise NotImplementedError('the classical segmenter only predicts (test_step)')
