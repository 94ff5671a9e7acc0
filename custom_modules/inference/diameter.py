"""Any nucleus size: estimate an image's nucleus diameter and rescale it to the training size.

A network knows the nucleus sizes it was trained on (DSB2018 stage1_train: 90 % of the
24,135 nuclei 7-49 px across, median 19; per image, median 10-50 px for 90 % of images).
On images at a higher magnification it sees texture, not nuclei, and returns a few
specks. As Cellpose's ``diameter``, :class:`NucleusRescaledModel` resizes each image so
that its nuclei meet the training size, predicts, and returns the label map at the
input's size.

``diameter='auto'`` estimates the size with the network itself: it predicts a window
of the image at a few scales (1, 1/2, 1/4, 1/8), and takes the scale at which the
confident nuclei *cover* most of the window. Specks on too-large nuclei are many but
small, so they cover little; the right scale covers the nuclei. A smaller scale counts
only as far as a neighbouring scale covers as much, with nuclei of the same size
(:func:`supported_coverage`): at 1/8 the cells around small nuclei (brightfield) look
like nuclei, at 1/4 they do not, or not as large. When the unscaled image alone shows
many confident nuclei (``trust_count``), they are the nuclei and scale 1 wins: on
brightfield of other microscopes 1/4 and 1/8 agree on the cells. The diameter is the median
equivalent diameter of that scale's nuclei, in the input's pixels. Images whose estimate
lies inside ``keep_range`` (sizes the network handles as they are) are predicted
unchanged, so images like the training set lose nothing.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmdet.registry import MODELS
from mmengine.model import BaseTTAModel

from custom_modules.inference.tiling import NucleusTiledModel
from custom_modules.structures.label_map import LabelMapPrediction, filter_prediction
from custom_modules.structures.predictor import Shape, at_shape, innermost, predict_batch

# Images are rescaled to this diameter: inside the training range, a little above the
# nuclei's median (19 px) because the networks' masks drop the smallest nuclei (min_area).
TRAIN_DIAMETER = 22.0
# Estimates in here are predicted as they are: the 5th-95th percentile of the training
# images' median nucleus diameters (9.6-49.7 px). On 38 fold-0 images (BENCHMARKS.md) the first
# guess, (11, 44), rescaled native images of 48-51 px and cost 0.017 at their own scale.
KEEP_RANGE = (10.0, 50.0)
PROBE_SCALES = (1.0, 0.5, 0.25, 0.125)
# Neighbouring probe scales support each other when their diameters (input pixels) agree
# within this factor. On 57 fold-0 images at 0.5-3x (U-Net) and 7 (ensemble), 1.2 lost
# two images that 1.35-1.5 kept; nothing changed between 1.35 and 1.5.
AGREE = 1.4
# Scale 1 wins outright with this many confident nuclei, of a width AGREE x larger nuclei
# would still be counted at (near 64 px the widest go uncounted, the median reads low). On
# 14 held-out brightfield images it found 21-55 of 18-26 px; 1/4 and 1/8 agreed on the cells
# (63-131 px) and shrank the images 4x. The U-Net finds 20+ fragments on too large nuclei:
# its configs turn this off (BENCHMARKS.md "On image types never seen in training").
TRUST_COUNT = 20
# Images of nuclei under keep_range are enlarged by Lanczos (8 x 8 pixels), sharper
# than bilinear: fold-0 images shrunk 2x, then predicted with 'auto' by the shipped
# U-Net, 0.5279 against 0.5080 (bicubic 0.5194; BENCHMARKS.md "Nucleus size").
ENLARGE = cv2.INTER_LANCZOS4
# ...then sharpened by an unsharp mask of this amount (Gaussian sigma half the factor, in
# enlarged pixels): interpolation cannot return the rims that the small image lost, and
# the networks learnt nuclei with sharp rims. The 110 fold-0 images of at most 700 px shrunk
# 2x, 'auto', unsharpened -> sharpened: U-Net 0.5130 -> 0.5185, Mask R-CNN 0.5056 -> 0.5205,
# ensemble 0.5113 -> 0.5220; unscaled images lose at most 0.002 (BENCHMARKS.md "Nucleus size").
SHARPEN = 1.0


class DiameterEstimate(NamedTuple):
    """What the size probe found.

    Attributes:
        diameter: median nucleus diameter in the input's pixels (NaN: none found).
        scale: the probe scale whose nuclei covered most (NaN: none found).
        coverage: per probe scale, the share of the window its nuclei covered.
    """
    diameter: float
    scale: float
    coverage: Tuple[Tuple[float, float], ...]


def resize(img: np.ndarray, factor: float, enlarge: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``img`` scaled by ``factor``: area averaging when shrinking, ``enlarge`` (an
    OpenCV interpolation) when enlarging."""
    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if size == (w, h):
        return img
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if factor < 1 else enlarge)


def enlarge(img: np.ndarray, factor: float, amount: float = SHARPEN) -> np.ndarray:
    """``img`` enlarged by ``factor`` > 1 (Lanczos), then unsharp-masked by ``amount``
    (0: not sharpened) within the range of its dtype (a float image: its finite range)."""
    out = resize(img, factor, ENLARGE)
    if amount == 0 or out is img:
        return out
    if np.issubdtype(out.dtype, np.integer):
        low, high = np.iinfo(out.dtype).min, np.iinfo(out.dtype).max
    else:  # NaN and inf stay non-finite; the blur spreads them over its few-pixel footprint
        finite = img[np.isfinite(img)]
        if finite.size == 0:
            return out
        low, high = float(finite.min()), float(finite.max())
    pixels = out.astype(np.float32)
    blur = cv2.GaussianBlur(pixels, (0, 0), 0.5 * factor)
    return np.clip(pixels + amount * (pixels - blur), low, high).astype(out.dtype)


def busiest_window(img: np.ndarray, size: int) -> Tuple[slice, slice]:
    """The ``size`` window (of a 3 x 3 grid of positions) with the most contrast."""
    h, w = img.shape[:2]
    grey = img.mean(axis=2) if img.ndim == 3 else img
    best, best_spread = (slice(0, min(h, size)), slice(0, min(w, size))), -1.0
    for top in np.linspace(0, max(h - size, 0), 3).round().astype(int):
        for left in np.linspace(0, max(w - size, 0), 3).round().astype(int):
            window = (slice(top, top + size), slice(left, left + size))
            spread = float(grey[window].std())
            if spread > best_spread:
                best, best_spread = window, spread
    return best


def estimate_diameter(predict, img: np.ndarray, scales: Sequence[float] = PROBE_SCALES,
                      window: int = 512, score_thr: float = 0.5, min_side: int = 48,
                      keep_share: float = 0.8,
                      probe_range: Sequence[float] = (6.0, 64.0),
                      trust_count: Optional[int] = TRUST_COUNT) -> DiameterEstimate:
    """Estimate the nucleus diameter of one image with a label-map predictor.

    Args:
        predict: ``img -> LabelMapPrediction`` (one view of the network).
        img: ``H x W x 3`` model input.
        scales: probe scales; each predicts one ``window`` of the rescaled image.
        window: side of the probed window, in rescaled pixels.
        score_thr: nuclei scoring below it are not counted.
        min_side: scales that make the image's shorter side smaller are skipped.
        keep_share: the largest scale whose (supported) coverage is at least this
            share of the best wins (a smaller scale merges small nuclei).
        probe_range: only nuclei this wide in the probed window count (narrower:
            specks; wider: merged clumps or sizes the network was not trained on).
        trust_count: the first scale wins when it counts at least this many nuclei
            whose median width, ``AGREE`` times larger, is still inside ``probe_range``
            (``None``: never outright).
    """
    found = []
    for scale in sorted(set(scales), reverse=True):
        if min(img.shape[:2]) * scale < min_side and found:
            continue
        scaled = resize(img, scale)
        rows, cols = busiest_window(scaled, window)
        pred = filter_prediction(predict(np.ascontiguousarray(scaled[rows, cols])), score_thr)
        crop = pred.label_map
        areas = np.bincount(crop.ravel(), minlength=len(pred) + 1)[1:len(pred) + 1]
        widths = 2.0 * np.sqrt(areas / np.pi)  # equivalent diameters
        counted = (widths >= probe_range[0]) & (widths <= probe_range[1])
        weights = np.asarray(pred.scores, np.float64) * counted
        coverage = float((areas * weights).sum() / max(crop.size, 1))
        found.append((scale, coverage,
                      float(np.median(widths[counted])) / scale if counted.any() else np.nan))
        if (len(found) == 1 and trust_count is not None and counted.sum() >= trust_count
                and found[0][2] * AGREE <= probe_range[1]):
            break  # the first scale shows many nuclei: it wins, the others are not probed
    supported = supported_coverage(found)
    best = max(supported)
    if best <= 0:
        return DiameterEstimate(np.nan, np.nan, tuple((s, c) for s, c, _ in found))
    scale, _, diameter = next(f for f, c in zip(found, supported) if c >= keep_share * best)
    return DiameterEstimate(diameter, scale, tuple((s, c) for s, c, _ in found))


def supported_coverage(found: Sequence[Tuple[float, float, float]],
                       agree: float = AGREE) -> List[float]:
    """Each probe scale's coverage, below the first scale only as far as a neighbouring
    scale covers as much with nuclei of the same size.

    Real nuclei stay nuclei over a factor of two: the scale that suits them and its
    neighbour both find them, at the same diameter in the input's pixels. What one
    scale alone sees is something else: the cells around small nuclei look like nuclei
    at 1/8 (brightfield), clumps and background blobs at the smallest scales. The first
    (largest) scale needs no support: it predicts the image nearest its own size.

    Args:
        found: ``(scale, coverage, diameter in input pixels)`` per scale, largest first.
        agree: two diameters agree when the larger is at most this times the smaller.
    """
    out = []
    for k, (_, coverage, diameter) in enumerate(found):
        if k == 0:
            out.append(coverage)
            continue
        support = [min(coverage, other) for _, other, size in found[k - 1:k] + found[k + 1:k + 2]
                   if max(diameter, size) <= agree * min(diameter, size)]  # False for NaN
        out.append(max(support, default=0.0))
    return out


def rescale_factor(diameter: float, train_diameter: float = TRAIN_DIAMETER,
                   keep_range: Optional[Sequence[float]] = KEEP_RANGE,
                   factor_range: Sequence[float] = (0.125, 4.0)) -> float:
    """The resize factor that brings ``diameter`` to ``train_diameter`` (1 inside ``keep_range``).

    Enlargements of 2x or more are rounded up to a whole factor (nuclei of 22-33 px
    rather than 22), each input pixel becoming ``k x k`` pixels. On fold-0 images
    shrunk 2x the shipped U-Net scored 0.5347 with factors rounded up, 0.5330 rounded
    to the nearest, 0.5279 exact (BENCHMARKS.md "Nucleus size").
    """
    if not np.isfinite(diameter) or diameter <= 0:
        return 1.0
    if keep_range is not None and keep_range[0] <= diameter <= keep_range[1]:
        return 1.0
    factor = float(np.clip(train_diameter / diameter, *factor_range))
    if factor >= 2:
        factor = min(float(np.ceil(factor)), factor_range[1])
    return factor


def parse_diameter(value: Union[str, float, None]) -> Union[str, float, None]:
    """``'auto'``, ``None`` (``'none'``/``0``: never rescale) or a positive number of pixels.

    Raises:
        ValueError: anything else, naming the value.
    """
    if value is None or isinstance(value, str) and value.lower() in ('auto', 'none'):
        return None if value is None or value.lower() == 'none' else 'auto'
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"diameter must be 'auto', 'none' or pixels, got {value!r}") from None
    if number == 0:
        return None
    if not np.isfinite(number) or number < 0:
        raise ValueError(f'diameter must be a positive number of pixels, got {value!r}')
    return number


@MODELS.register_module()
class NucleusRescaledModel(BaseTTAModel):
    """Wrap any label-map predictor to predict each image at the training nucleus size.

    Args:
        module: the wrapped predictor's config (a network, TTA, tiles).
        diameter: ``'auto'`` (estimate per image) or the nuclei's diameter in pixels.
        train_diameter: the diameter the network was trained at.
        keep_range: estimates inside it are predicted unchanged (``None``: always rescale).
        factor_range: the least and largest resize factor.
        window: side of the window the size probe predicts at each scale.
        trust_count: scale 1 wins when it counts this many nuclei (``None``: never
            outright; see :func:`estimate_diameter`).
        data_preprocessor: unused (the wrapped model preprocesses).
    """

    def __init__(self, module: dict, diameter: Union[str, float] = 'auto',
                 train_diameter: float = TRAIN_DIAMETER,
                 keep_range: Optional[Sequence[float]] = KEEP_RANGE,
                 factor_range: Sequence[float] = (0.125, 4.0), window: int = 512,
                 trust_count: Optional[int] = TRUST_COUNT,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        self.diameter = parse_diameter(diameter)
        if self.diameter is None:
            raise ValueError("NucleusRescaledModel needs diameter 'auto' or pixels")
        if train_diameter <= 0 or not 0 < factor_range[0] <= 1 <= factor_range[1]:
            raise ValueError(f'need train_diameter > 0 and factor_range around 1, got '
                             f'{train_diameter} and {tuple(factor_range)}')
        self.train_diameter = float(train_diameter)
        self.keep_range = None if keep_range is None else tuple(map(float, keep_range))
        self.factor_range = tuple(map(float, factor_range))
        self.window = window
        self.trust_count = trust_count
        self.last_estimate: Optional[DiameterEstimate] = None
        self._whole: Optional[LabelMapPrediction] = None  # the probe's whole image at scale 1

    def network(self):
        """The trained network inside the wrapped predictor (the size probe's one view)."""
        return innermost(self.module)

    def direct_network(self, img: np.ndarray):
        """The network when the wrapped predictor hands ``img`` to it as it is, else None."""
        module = self.module
        while isinstance(module, NucleusTiledModel) and not module.tiles(img):
            module = module.module
        return module if module is self.network() else None

    def factor(self, img: np.ndarray) -> float:
        """The resize factor for one image (estimating its diameter when ``'auto'``)."""
        self._whole = None
        if self.diameter != 'auto':
            self.last_estimate = DiameterEstimate(self.diameter, np.nan, ())
            return rescale_factor(self.diameter, self.train_diameter, None, self.factor_range)
        net = self.network()

        def probe(window: np.ndarray) -> LabelMapPrediction:
            pred = net.predict_label_map(window)
            if window.shape == img.shape:  # the whole image at scale 1: kept for reuse
                self._whole = pred
            return pred

        self.last_estimate = estimate_diameter(probe, img, window=self.window,
                                               trust_count=self.trust_count)
        return rescale_factor(self.last_estimate.diameter, self.train_diameter,
                              self.keep_range, self.factor_range)

    def predict_label_map(self, img: np.ndarray, out_shape: Shape = None,
                          raw: bool = False) -> LabelMapPrediction:
        """Predict at the training nucleus size; the label map at ``img``'s size
        (or ``out_shape``; see :class:`~custom_modules.structures.predictor.LabelMapPredictor`)."""
        factor = self.factor(img)
        if factor == 1.0:
            whole = (self._whole if self.direct_network(img) is not None and not raw
                     and out_shape in (None, img.shape[:2]) else None)
            return whole if whole is not None else self.module.predict_label_map(
                img, out_shape, raw)
        target = img.shape[:2] if out_shape is None else tuple(out_shape)
        scaled = np.ascontiguousarray(
            enlarge(img, factor, SHARPEN) if factor > 1 else resize(img, factor))
        net = self.direct_network(scaled)
        if factor < 1 and net is not None:  # masks pasted smoothly at the input's size
            pred = net.predict_label_map(scaled, out_shape=target, raw=raw)
            if raw:
                return pred
            min_area = getattr(getattr(net, 'postprocess', None), 'min_area', 0)
            return filter_prediction(pred, 0.0, int(np.ceil(min_area / factor ** 2)))
        return at_shape(self.module.predict_label_map(scaled, raw=raw), target)

    def test_step(self, data: dict) -> list:
        return predict_batch(self, data)

    def merge_preds(self, data_samples_list):
        raise NotImplementedError('NucleusRescaledModel predicts each image itself')
