"""Reading DSB images and masks, and turning them into what the model is fed.

The model is always fed 3-channel 8-bit BGR (mmcv's convention):

* RGBA: the alpha channel is dropped (it is constant 255 in DSB2018);
* grey (2-D or 1-channel): replicated to three channels;
* 16-bit: rescaled linearly so that the image's maximum becomes 255;
* ``mode='grey_dark'`` (the CPU recipe): luminance only, inverted when the
  background is bright (brightfield, histology) so nuclei are always bright on
  dark, then stretched between the 0.5th and 99.5th percentiles.
"""
import os

import cv2
import numpy as np

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
PNG_END = b'IEND\xaeB`\x82'
INPUT_MODES = ('rgb', 'grey_dark')


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


def to_8bit(img: np.ndarray) -> np.ndarray:
    """Bring any integer or float image to uint8, keeping 8-bit images as they are."""
    if img.dtype == np.uint8:
        return img
    img = img.astype(np.float32)
    peak = float(img.max()) if img.size else 0.0
    scale = 255.0 / peak if peak > 0 else 0.0
    return np.clip(img * scale, 0, 255).astype(np.uint8)


def to_model_input(img: np.ndarray, mode: str = 'rgb') -> np.ndarray:
    """Convert a decoded image (cv2 channel order) into 3-channel uint8 BGR."""
    if mode not in INPUT_MODES:
        raise ValueError(f'unknown input mode {mode!r}, expected one of {INPUT_MODES}')
    img = to_8bit(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if mode == 'grey_dark':
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
        if np.median(grey) > 127:
            grey = 255.0 - grey
        lo, hi = np.percentile(grey, (0.5, 99.5))
        grey = np.clip((grey - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)
        img = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(img)


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
    return 'grey_bright' if float(np.median(img)) > 127 else 'grey_dark'


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
    """The image's id: its file name without folder and extension."""
    return os.path.splitext(os.path.basename(path))[0]


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


def read_any_image(path: str, page: int = 0) -> np.ndarray:
    """Read a PNG, JPEG, BMP or TIFF as stored, channels in cv2's (B, G, R[, A]) order.

    Grey, RGB and RGBA, 8 or 16 bits, any size. TIFF pages (every page of
    every series, counted from 0) are chosen with ``page``; other formats have
    one page. ``to_model_input`` turns the result into the model's input.

    Raises:
        ImageReadError: unreadable file, or ``page`` out of range (the
            message names the file and its number of pages).
    """
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
