"""From a decoded image of any depth to what the model is fed: 3-channel 8-bit BGR
(mmcv's convention).

* RGBA: the alpha channel is dropped (it is constant 255 in DSB2018);
* grey (2-D or 1-channel): replicated to three channels;
* 16-bit (any non-negative integers): rescaled linearly so that the image's
  maximum becomes 255;
* float, or integers with negative values (background-subtracted): stretched
  between the 0.1th and 99.9th percentiles of the finite pixels; NaN and
  infinite pixels become 0, as the low percentile does (``image_io.read_any_image``
  warns with their count);
* ``mode='grey_dark'`` (the CPU recipe): luminance only, inverted when the
  background is bright (brightfield, histology) so nuclei are always bright on
  dark, then stretched between the 0.5th and 99.5th percentiles.

Conversions run in strips of rows through 8-bit look-up tables, so preparing
an image takes a few bytes per pixel beyond the decoded image (no float copy
of the whole image).
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

INPUT_MODES = ('rgb', 'grey_dark')
ROBUST_PERCENTILES = (0.1, 99.9)  # float and signed images are stretched between these
PERCENTILE_SAMPLES = 1 << 22  # larger images: percentiles of every k-th pixel
STRIP_VALUES = 1 << 22  # values converted at a time
AUTO = object()  # to_8bit's default: scaling computed from the image itself


def _strips(img: np.ndarray):
    """Slices of rows of ``img`` holding about ``STRIP_VALUES`` values each."""
    rows = max(1, STRIP_VALUES // max(1, img[:1].size))
    return (slice(y, y + rows) for y in range(0, img.shape[0], rows))


def _scaled(img: np.ndarray, lo: float, scale: float, exact: bool = False) -> np.ndarray:
    """``clip((img - lo) * scale, 0, 255)`` as uint8, strip by strip: truncated from
    float32 maths (integer images, as always), or rounded from float64 maths when
    ``exact``; NaN and infinite values give 0."""
    out = np.empty(img.shape, np.uint8)
    for rows in _strips(img):
        part = img[rows].astype(np.float64 if exact else np.float32)
        if lo:
            part -= lo
        part *= scale
        if exact:
            part[~np.isfinite(part)] = 0
            np.rint(part, out=part)
        out[rows] = np.clip(part, 0, 255, out=part)
    return out


def robust_range(img: np.ndarray, percentiles=ROBUST_PERCENTILES):
    """``(lo, hi)``: percentiles of the finite pixels (of an even sample of large images).

    ``hi`` is the finite maximum when the percentiles coincide; ``(0, 0)``
    when no pixel is finite.
    """
    flat = img.reshape(-1)
    sample = flat[::max(1, flat.size // PERCENTILE_SAMPLES)].astype(np.float64)
    sample = sample[np.isfinite(sample)]
    if not sample.size:
        return 0.0, 0.0
    lo, hi = (float(v) for v in np.percentile(sample, percentiles))
    return lo, hi if hi > lo else float(sample.max())


def eight_bit_scaling(img: np.ndarray) -> Optional[Tuple[float, float, bool]]:
    """How :func:`to_8bit` scales ``img``: ``(lo, scale, exact)``, or ``None`` for 8 bits.

    Computed from the image itself, or from a sample of it (a whole-slide image:
    :mod:`custom_modules.data.slide_io`) and then applied to each tile.
    """
    if img.dtype == np.uint8:
        return None
    if img.dtype.kind == 'f' or (img.dtype.kind == 'i' and img.size and img.min() < 0):
        lo, hi = robust_range(img)
        return lo, 255.0 / (hi - lo) if hi > lo else 0.0, True
    peak = float(np.float32(img.max())) if img.size else 0.0  # as float32 maths gave it
    return 0.0, 255.0 / peak if peak > 0 else 0.0, False


def to_8bit(img: np.ndarray, scaling=AUTO) -> np.ndarray:
    """Bring any image to uint8, keeping 8-bit images as they are.

    Non-negative integers: scaled so that the maximum becomes 255. Float, or
    integers with negative values: stretched between :data:`ROBUST_PERCENTILES`
    of the finite pixels; NaN and infinite pixels become 0. ``scaling``: a
    :func:`eight_bit_scaling` computed beforehand (default: from ``img``).
    """
    if scaling is AUTO:
        scaling = eight_bit_scaling(img)
    if img.dtype == np.uint8 or scaling is None:
        return img
    return _scaled(img, *scaling)


def to_model_input(img: np.ndarray, mode: str = 'rgb',
                   scaling=None) -> np.ndarray:
    """Convert a decoded image (cv2 channel order) into 3-channel uint8 BGR.

    ``scaling``: statistics computed beforehand (``slide_io.input_scaling`` of
    a sample of the whole image, for a tile of it); default: from ``img``.
    """
    if mode not in INPUT_MODES:
        raise ValueError(f'unknown input mode {mode!r}, expected one of {INPUT_MODES}')
    img = to_8bit(img) if scaling is None else to_8bit(img, scaling.eight_bit)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if mode == 'grey_dark':
        grey = grey_8bit(img)
        img = cv2.LUT(grey, grey_dark_lut(grey) if scaling is None else scaling.grey_lut)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(img)


def bright_background(grey: np.ndarray) -> bool:
    """Whether an 8-bit-scale grey image has a bright background (brightfield, histology:
    dark nuclei): its median is above 127. The one rule the readers, the appearance
    transforms, the image kinds and the classical segmenter share."""
    return bool(grey.size) and float(np.median(grey)) > 127


def grey_8bit(img: np.ndarray) -> np.ndarray:
    """Luminance of an 8-bit image (a grey image is its own: cv2's BGR2GRAY of equal
    channels is exact)."""
    if img.ndim == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    return img


def grey_dark_lut(grey: np.ndarray) -> np.ndarray:
    """``grey_dark``'s look-up table for an 8-bit luminance image: inverted when the
    background is bright, stretched between the 0.5th and 99.5th percentiles."""
    levels = np.arange(256, dtype=np.float32)
    if bright_background(grey):
        levels = 255.0 - levels
        lo, hi = np.percentile(cv2.LUT(grey, levels.astype(np.uint8)), (0.5, 99.5))
    else:
        lo, hi = np.percentile(grey, (0.5, 99.5))
    return np.clip((levels - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)


def shift_channels(img: np.ndarray, offsets: Sequence[float]) -> np.ndarray:
    """Add per-channel ``offsets`` to a uint8 image, clipped to 0..255."""
    shifted = img.astype(np.float32) + np.asarray(offsets, np.float32)[None, None, :]
    return np.clip(shifted, 0, 255).astype(np.uint8)
