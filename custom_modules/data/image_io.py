"""Reading DSB images and masks, and turning them into what the model is fed.

The model is always fed 3-channel 8-bit BGR (mmcv's convention):

* RGBA: the alpha channel is dropped (it is constant 255 in DSB2018);
* grey (2-D or 1-channel): replicated to three channels;
* 16-bit (any non-negative integers): rescaled linearly so that the image's
  maximum becomes 255;
* float, or integers with negative values (background-subtracted): stretched
  between the 0.1th and 99.9th percentiles of the finite pixels; NaN and
  infinite pixels become 0, as the low percentile does (``read_any_image``
  warns with their count);
* ``mode='grey_dark'`` (the CPU recipe): luminance only, inverted when the
  background is bright (brightfield, histology) so nuclei are always bright on
  dark, then stretched between the 0.5th and 99.5th percentiles.

Conversions run in strips of rows through 8-bit look-up tables, so preparing
an image takes a few bytes per pixel beyond the decoded image (no float copy
of the whole image).
"""
import os
import warnings
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from custom_modules.data.image_header import budget_message, header_pixels

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
PNG_END = b'IEND\xaeB`\x82'
INPUT_MODES = ('rgb', 'grey_dark')
ROBUST_PERCENTILES = (0.1, 99.9)  # float and signed images are stretched between these
PERCENTILE_SAMPLES = 1 << 22  # larger images: percentiles of every k-th pixel
STRIP_VALUES = 1 << 22  # values converted at a time
# The default pixel budget of tools/predict.py and NucleusInferencer (--max-pixels). A
# prediction peaks at ~14-16 bytes per pixel above the model (measured on 6,000 x 6,000
# 8-bit grey and colour PNGs, decoding to written outputs), so 400 Mpx (20,000 x 20,000)
# is ~6.5 GB: a quarter of this project's 24 GiB machines.
DEFAULT_MAX_PIXELS = 400_000_000
AUTO = object()  # to_8bit's default: scaling computed from the image itself


class ImageReadError(ValueError):
    """An image or mask file that cannot be used; the message names it."""


def read_image_file(path: str) -> np.ndarray:
    """Decode an image file as stored (any depth, any channel count).

    Raises:
        ImageReadError: missing, empty, truncated or undecodable file.
    """
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        raise ImageReadError(f'{path}: cannot read ({err.strerror})') from None
    if not data:
        raise ImageReadError(f'{path}: empty file')
    if data.startswith(PNG_SIGNATURE) and PNG_END not in data[-64:]:
        raise ImageReadError(f'{path}: truncated PNG (no IEND chunk at the end)')
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ImageReadError(f'{path}: not a decodable image')
    return img


def read_mask_file(path: str) -> np.ndarray:
    """Read a mask PNG as a boolean ``H x W`` array (any channel non-zero)."""
    mask = read_image_file(path)
    return mask.any(axis=2) if mask.ndim == 3 else mask.astype(bool)


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


IMAGE_KINDS = ('colour', 'grey_bright', 'grey_dark')  # what image_kind returns


def image_kind(img: np.ndarray) -> str:
    """Coarse kind of a DSB image: ``grey_dark``, ``grey_bright`` or ``colour``.

    Grey fluorescence (dark background), grey brightfield (bright background)
    and colour histology are the three families of the competition.
    """
    img = to_8bit(img)
    if img.ndim == 3 and img.shape[2] >= 3:
        rgb = img[:, :, :3].astype(np.int16)
        if np.abs(rgb - rgb[:, :, :1]).max() > 10:
            return 'colour'
        img = img[:, :, 0]
    elif img.ndim == 3:
        img = img[:, :, 0]
    return 'grey_bright' if bright_background(img) else 'grey_dark'


def size_bucket(height: int, width: int) -> str:
    """Size class used to stratify folds: ``small`` (<= 256^2), ``medium``, ``large``."""
    area = int(height) * int(width)
    return 'small' if area <= 256 * 256 else ('medium' if area <= 640 * 640 else 'large')


def image_path_in(folder: str, image_id: str) -> str:
    """Locate ``<folder>/<id>/images/<id>.png`` or ``<folder>/<id>.png``."""
    for cand in (os.path.join(folder, image_id, 'images', image_id + '.png'),
                 os.path.join(folder, image_id + '.png')):
        if os.path.isfile(cand):
            return cand
    raise ImageReadError(f'{folder}: no image for ImageId {image_id} '
                         f'(looked for {image_id}/images/{image_id}.png and {image_id}.png)')


# Reading users' own images (tools/predict.py, NucleusInferencer).

IMAGE_EXTENSIONS = ('.png', '.tif', '.tiff', '.jpg', '.jpeg', '.bmp')
TIFF_EXTENSIONS = ('.tif', '.tiff')


def image_name(path: str) -> str:
    """The image's id: its file name without folder and extension (``.ome.zarr``
    and ``.zarr`` for an OME-Zarr folder)."""
    base = os.path.basename(os.path.normpath(path))
    for suffix in ('.ome.zarr', '.zarr'):
        if base.lower().endswith(suffix):
            return base[:-len(suffix)]
    return os.path.splitext(base)[0]


def _tiff_page(path: str, page: int) -> np.ndarray:
    """One page of a TIFF as ``H x W`` or ``H x W x S`` (tifffile's sample order)."""
    import tifffile
    try:
        with tifffile.TiffFile(path) as tif:
            count = len(tif.pages)
            if not -count <= page < count:
                raise ImageReadError(f'{path}: has {count} page{"s" if count != 1 else ""}, '
                                     f'page {page} asked for (pages count from 0)')
            tiff_page = tif.pages[page]
            img, axes = tiff_page.asarray(), tiff_page.axes
    except ImageReadError:
        raise
    except OSError as err:
        raise ImageReadError(f'{path}: cannot read ({err.strerror or err})') from None
    except Exception as err:  # tifffile raises several types on broken files
        raise ImageReadError(f'{path}: not a readable TIFF ({err})') from None
    if 'S' in axes:  # samples (channels) last
        img, axes = np.moveaxis(img, axes.index('S'), -1), axes.replace('S', '') + 'S'
    img = img.squeeze(tuple(i for i, a in enumerate(axes)
                            if img.shape[i] == 1 and (a not in 'YX')))
    if img.ndim not in (2, 3) or img.size == 0:
        raise ImageReadError(f'{path}: page {page} has shape {img.shape} ({axes}), '
                             'not a 2-D image with 1, 3 or 4 samples')
    return img


class PixelBudgetError(ImageReadError):
    """An image larger than the pixel budget; the message names the file and both sizes."""


class NonFiniteWarning(UserWarning):
    """An image with NaN or infinite pixels (shown as background)."""


def check_pixels(name: str, size: str, pixels: int, max_pixels: Optional[int]) -> None:
    """Refuse ``pixels`` above ``max_pixels`` (``None`` or 0: no budget).

    Raises:
        PixelBudgetError: naming ``name``, its ``size`` and the budget.
    """
    if max_pixels and pixels > max_pixels:
        raise PixelBudgetError(budget_message(name, size, pixels, max_pixels))


def read_any_image(path: str, page: int = 0, max_pixels: Optional[int] = None) -> np.ndarray:
    """Read a PNG, JPEG, BMP or TIFF as stored, channels in cv2's (B, G, R[, A]) order.

    Grey, RGB and RGBA, 8 or 16 bits or float, any size. TIFF pages (every page of
    every series, counted from 0) are chosen with ``page``; other formats have
    one page. ``to_model_input`` turns the result into the model's input.
    Float images with NaN or infinite pixels are read with a
    :class:`NonFiniteWarning` that counts them.

    Args:
        path: the image file.
        page: the TIFF page.
        max_pixels: refuse an image whose header says it has more pixels,
            before decoding it (``None`` or 0: no budget).

    Raises:
        ImageReadError: unreadable file, or ``page`` out of range (the
            message names the file and its number of pages).
        PixelBudgetError: more pixels than ``max_pixels``.
    """
    if max_pixels:
        pixels, size = header_pixels(path, page)
        if pixels is not None:
            check_pixels(path, size, pixels, max_pixels)
    img = _read_page(path, page)
    if img.dtype.kind == 'f':
        bad = img.size - np.count_nonzero(np.isfinite(img))
        if bad:
            warnings.warn(f'{path}: {bad} NaN or infinite pixel{"s" if bad > 1 else ""} '
                          'ignored (shown as background)', NonFiniteWarning, stacklevel=2)
    return img


def _read_page(path: str, page: int) -> np.ndarray:
    """:func:`read_any_image` without its checks."""
    if os.path.splitext(path)[1].lower() not in TIFF_EXTENSIONS:
        if page not in (0, -1):
            raise ImageReadError(f'{path}: has 1 page, page {page} asked for (pages count from 0)')
        return read_image_file(path)
    if not os.path.isfile(path):
        raise ImageReadError(f'{path}: cannot read (no such file)')
    img = _tiff_page(path, page)
    if img.ndim == 3 and img.shape[2] == 2:  # grey + alpha
        img = img[:, :, 0]
    elif img.ndim == 3 and img.shape[2] in (3, 4):  # RGB(A) -> BGR(A)
        img = img[:, :, [2, 1, 0, 3][:img.shape[2]]]
    elif img.ndim == 3:
        raise ImageReadError(f'{path}: page {page} has {img.shape[2]} channels; '
                             'expected grey, RGB or RGBA (pick a page with --page)')
    return np.ascontiguousarray(img)


def shift_channels(img: np.ndarray, offsets: Sequence[float]) -> np.ndarray:
    """Add per-channel ``offsets`` to a uint8 image, clipped to 0..255."""
    shifted = img.astype(np.float32) + np.asarray(offsets, np.float32)[None, None, :]
    return np.clip(shifted, 0, 255).astype(np.uint8)
