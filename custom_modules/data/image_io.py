"""Reading DSB images and masks, and users' own images (PNG, JPEG, BMP, TIFF pages).

Images are read as stored (any depth, any channel count);
:func:`~custom_modules.data.intensity.to_model_input` turns them into what the
model is fed.
"""
import os
import warnings
from typing import Optional

import cv2
import numpy as np

from custom_modules.data.image_header import budget_message, header_pixels
from custom_modules.data.intensity import bright_background, to_8bit

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
PNG_END = b'IEND\xaeB`\x82'
# The default pixel budget of tools/predict.py and NucleusInferencer (--max-pixels). A
# prediction peaks at ~14-16 bytes per pixel above the model (measured on 6,000 x 6,000
# 8-bit grey and colour PNGs, decoding to written outputs), so 400 Mpx (20,000 x 20,000)
# is ~6.5 GB: a quarter of this project's 24 GiB machines.
DEFAULT_MAX_PIXELS = 400_000_000


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

