"""Appearance augmentations that mimic other microscopes and stains (issue 29).

Each changes only ``results['img']`` (3-channel uint8 BGR from
``LoadNucleusImage``), never masks or boxes, with probability ``prob`` and
parameters drawn uniformly from explicit ranges. Arithmetic is in float32 and
the result is clipped back to 0..255 and the input's dtype. Randomness comes
from ``np.random``, as in :mod:`custom_modules.data.transforms`, so a fixed seed
gives the same result. They are not part of the shipped recipes;
``configs/dsb_unet_cpu_appearance.py`` inserts them for a measured run.
"""
from typing import Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

from custom_modules.data.intensity import bright_background, to_model_input

Range = Tuple[float, float]
# Ruifrok & Johnston's haematoxylin, eosin and DAB optical densities (RGB rows).
HED_FROM_RGB_OD = np.linalg.inv(np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11],
                                          [0.27, 0.57, 0.78]], np.float64))
RGB_OD_FROM_HED = np.linalg.inv(HED_FROM_RGB_OD)


def _check_range(name: str, bounds: Range, low: float = -np.inf) -> Range:
    """``bounds`` as a float pair ``low <= lo <= hi``; ValueError naming ``name`` otherwise."""
    lo, hi = (float(b) for b in bounds)
    if not low <= lo <= hi:
        raise ValueError(f'{name} must be (lo, hi) with {low} <= lo <= hi, got {bounds}')
    return lo, hi


def _draw(bounds: Range, size=None):
    return np.random.uniform(bounds[0], bounds[1], size)


def _finish(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``out`` rounded, clipped to 0..255, in ``like``'s dtype and memory layout."""
    return np.ascontiguousarray(np.clip(np.rint(out), 0, 255).astype(like.dtype))


def is_grey(img: np.ndarray) -> bool:
    """Whether a BGR image's three channels are equal (a grey image replicated)."""
    return bool((img[:, :, 0] == img[:, :, 1]).all() and (img[:, :, 1] == img[:, :, 2]).all())


class _Appearance(BaseTransform):
    """Apply :meth:`apply` to ``results['img']`` with probability ``prob``."""

    def __init__(self, prob: float) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.prob = prob

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        img = results['img']
        results['img'] = _finish(self.apply(img.astype(np.float32)), img)
        return results

    def apply(self, img: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@TRANSFORMS.register_module()
class RandomHEDJitter(_Appearance):
    """Stain jitter in haematoxylin-eosin-DAB space (colour deconvolution).

    Args:
        scale_range: each stain's density is multiplied by a draw from this.
        shift_range: then shifted by a draw from this (optical density units).
        skip_grey: leave grey images (equal channels) alone.
        prob: probability of jittering.
    """

    def __init__(self, scale_range: Range = (0.9, 1.1), shift_range: Range = (-0.05, 0.05),
                 skip_grey: bool = True, prob: float = 0.5) -> None:
        super().__init__(prob)
        self.scale_range = _check_range('scale_range', scale_range, 0.0)
        self.shift_range = _check_range('shift_range', shift_range)
        self.skip_grey = skip_grey

    def apply(self, img: np.ndarray) -> np.ndarray:
        if self.skip_grey and is_grey(img):
            return img
        od = -np.log((img[:, :, ::-1].astype(np.float64) + 1.0) / 256.0)  # RGB optical density
        hed = od @ HED_FROM_RGB_OD
        hed = hed * _draw(self.scale_range, 3) + _draw(self.shift_range, 3)
        rgb = 256.0 * np.exp(-np.maximum(hed @ RGB_OD_FROM_HED, 0.0)) - 1.0
        return rgb[:, :, ::-1].astype(np.float32)


@TRANSFORMS.register_module()
class RandomHSVJitter(_Appearance):
    """Hue shift (degrees), saturation and value scaling in HSV space.

    Args:
        hue_range: hue shift in degrees.
        saturation_range: saturation factor.
        value_range: value (brightness) factor.
        prob: probability of jittering.
    """

    def __init__(self, hue_range: Range = (-15.0, 15.0), saturation_range: Range = (0.7, 1.3),
                 value_range: Range = (0.8, 1.2), prob: float = 0.5) -> None:
        super().__init__(prob)
        self.hue_range = _check_range('hue_range', hue_range, -180.0)
        self.saturation_range = _check_range('saturation_range', saturation_range, 0.0)
        self.value_range = _check_range('value_range', value_range, 0.0)

    def apply(self, img: np.ndarray) -> np.ndarray:
        hsv = cv2.cvtColor(np.clip(img, 0, 255) / 255.0, cv2.COLOR_BGR2HSV)  # H in degrees
        hsv[:, :, 0] = np.mod(hsv[:, :, 0] + _draw(self.hue_range), 360.0)
        hsv[:, :, 1] = np.clip(hsv[:, :, 1] * _draw(self.saturation_range), 0.0, 1.0)
        hsv[:, :, 2] = np.clip(hsv[:, :, 2] * _draw(self.value_range), 0.0, 1.0)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR) * 255.0


@TRANSFORMS.register_module()
class RandomGreyColour(_Appearance):
    """Colour images become grey (luminance); grey ones get a random stain tint.

    A grey image ``g`` becomes ``255 - (255 - g) * absorb`` per channel
    (dark nuclei absorb, as a stain does) or ``g * absorb`` for a dark
    background (a coloured fluorescence channel).

    Args:
        absorb_range: per-channel factor drawn from this, then divided by the
            largest so one channel keeps the full range.
        prob: probability of converting.
    """

    def __init__(self, absorb_range: Range = (0.3, 1.0), prob: float = 0.2) -> None:
        super().__init__(prob)
        self.absorb_range = _check_range('absorb_range', absorb_range, 0.0)
        if self.absorb_range[1] <= 0:
            raise ValueError(f'absorb_range must reach above 0, got {absorb_range}')

    def apply(self, img: np.ndarray) -> np.ndarray:
        if not is_grey(img):
            grey = cv2.cvtColor(np.clip(img, 0, 255) / 255.0, cv2.COLOR_BGR2GRAY) * 255.0
            return np.repeat(grey[:, :, None], 3, 2)
        absorb = _draw(self.absorb_range, 3)
        absorb = (absorb / absorb.max()).astype(np.float32)
        if bright_background(img):  # a stain
            return 255.0 - (255.0 - img) * absorb
        return img * absorb


@TRANSFORMS.register_module()
class RandomInvert(_Appearance):
    """Intensity inversion (fluorescence <-> bright-field look).

    Args:
        prob: probability of inverting.
    """

    def __init__(self, prob: float = 0.1) -> None:
        super().__init__(prob)

    def apply(self, img: np.ndarray) -> np.ndarray:
        return 255.0 - img


@TRANSFORMS.register_module()
class RandomGammaContrast(_Appearance):
    """Gamma, then contrast about the image mean.

    Args:
        gamma_range: ``out = 255 * (img / 255) ** gamma``.
        contrast_range: then ``mean + (out - mean) * contrast``.
        prob: probability of applying.
    """

    def __init__(self, gamma_range: Range = (0.6, 1.6), contrast_range: Range = (0.7, 1.3),
                 prob: float = 0.5) -> None:
        super().__init__(prob)
        self.gamma_range = _check_range('gamma_range', gamma_range, 1e-3)
        self.contrast_range = _check_range('contrast_range', contrast_range, 0.0)

    def apply(self, img: np.ndarray) -> np.ndarray:
        out = 255.0 * (np.clip(img, 0, 255) / 255.0) ** _draw(self.gamma_range)
        mean = out.mean()
        return mean + (out - mean) * _draw(self.contrast_range)


@TRANSFORMS.register_module()
class RandomDefocus(_Appearance):
    """Gaussian blur (defocus, a lower numerical aperture).

    Args:
        sigma_range: the Gaussian's sigma in pixels.
        prob: probability of blurring.
    """

    def __init__(self, sigma_range: Range = (0.5, 2.0), prob: float = 0.3) -> None:
        super().__init__(prob)
        self.sigma_range = _check_range('sigma_range', sigma_range, 0.0)

    def apply(self, img: np.ndarray) -> np.ndarray:
        sigma = _draw(self.sigma_range)
        return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma) if sigma > 0 else img


@TRANSFORMS.register_module()
class RandomPoissonGaussianNoise(_Appearance):
    """Shot noise (Poisson, ``peak`` photons at 255) plus Gaussian read noise.

    Args:
        peak_range: photons of a full-scale pixel; fewer is noisier.
        sigma_range: Gaussian noise standard deviation in grey levels.
        prob: probability of adding noise.
    """

    def __init__(self, peak_range: Range = (20.0, 500.0), sigma_range: Range = (0.0, 8.0),
                 prob: float = 0.3) -> None:
        super().__init__(prob)
        self.peak_range = _check_range('peak_range', peak_range, 1e-3)
        self.sigma_range = _check_range('sigma_range', sigma_range, 0.0)

    def apply(self, img: np.ndarray) -> np.ndarray:
        grey = is_grey(img)
        base = img[:, :, :1] if grey else img  # a grey image stays grey
        peak, sigma = _draw(self.peak_range), _draw(self.sigma_range)
        photons = np.random.poisson(np.clip(base, 0, 255) * (peak / 255.0))
        out = photons * (255.0 / peak) + np.random.normal(0.0, sigma, base.shape)
        return np.repeat(out, 3, 2) if grey else out


@TRANSFORMS.register_module()
class RandomJPEG(_Appearance):
    """JPEG compression artefacts.

    Args:
        quality_range: JPEG quality (integer draw, 1..100).
        prob: probability of compressing.
    """

    def __init__(self, quality_range: Range = (30, 90), prob: float = 0.3) -> None:
        super().__init__(prob)
        self.quality_range = _check_range('quality_range', quality_range, 1.0)
        if self.quality_range[1] > 100:
            raise ValueError(f'quality_range must lie in 1..100, got {quality_range}')

    def apply(self, img: np.ndarray) -> np.ndarray:
        quality = int(np.random.randint(self.quality_range[0], self.quality_range[1] + 1))
        ok, data = cv2.imencode('.jpg', _finish(img, np.zeros(0, np.uint8)),
                                [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.imdecode(data, cv2.IMREAD_COLOR).astype(np.float32) if ok else img


@TRANSFORMS.register_module()
class RandomDownUp(_Appearance):
    """Down-sample then up-sample to the same size (a coarser camera or lower magnification).

    Args:
        scale_range: the intermediate size as a fraction of the original.
        prob: probability of resampling.
        interpolation: how the small image is enlarged back: ``'linear'``, ``'cubic'``
            or ``'lanczos'`` (what ``--diameter auto`` enlarges small nuclei with).
    """

    INTERPOLATIONS = {'linear': cv2.INTER_LINEAR, 'cubic': cv2.INTER_CUBIC,
                      'lanczos': cv2.INTER_LANCZOS4}

    def __init__(self, scale_range: Range = (0.35, 0.8), prob: float = 0.3,
                 interpolation: str = 'linear') -> None:
        super().__init__(prob)
        self.scale_range = _check_range('scale_range', scale_range, 1e-3)
        if self.scale_range[1] > 1:
            raise ValueError(f'scale_range must lie in (0, 1], got {scale_range}')
        if interpolation not in self.INTERPOLATIONS:
            raise ValueError(f'interpolation must be one of {sorted(self.INTERPOLATIONS)}, '
                             f'got {interpolation!r}')
        self.interpolation = interpolation

    def apply(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        s = _draw(self.scale_range)
        small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))),
                           interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=self.INTERPOLATIONS[self.interpolation])


@TRANSFORMS.register_module()
class NucleusInputMode(BaseTransform):
    """Convert a loaded 3-channel BGR image to a model input mode (``intensity``'s
    ``to_model_input``), so colour augmentations can run before ``grey_dark``.

    Args:
        mode: ``'rgb'`` or ``'grey_dark'``.
    """

    def __init__(self, mode: str = 'grey_dark') -> None:
        to_model_input(np.zeros((1, 1, 3), np.uint8), mode)  # refuses an unknown mode
        self.mode = mode

    def transform(self, results: dict) -> dict:
        results['img'] = to_model_input(results['img'], self.mode)
        return results
