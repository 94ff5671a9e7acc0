"""Whole-slide images read lazily, region by region: large (OME-)TIFF, pyramids, OME-Zarr.

A TIFF page (or the OME series it starts, at pyramid ``level``) is read through
tifffile's Zarr store, an OME-Zarr folder (NGFF ``multiscales``, 0.4 or 0.5)
through ``zarr.open_group``; :meth:`LazyImage.read` decodes only the chunks a
region touches. Regions come back as :func:`~custom_modules.data.image_io.read_any_image`
gives whole images: grey ``H x W`` or channels in cv2's (B, G, R[, A]) order.

The image-wide statistics of :func:`~custom_modules.data.intensity.to_model_input`
(the 8-bit scaling, ``grey_dark``'s inversion and stretch) come from a bounded
sample (:func:`read_sample`: a lower pyramid level of at most ``SAMPLE_PIXELS``
when there is one, else an even strided read of the level) and are applied to
every tile (:func:`input_scaling`).

Other formats (PNG, JPEG, BMP...) have no random access: a large one is decoded
once into its raw integer array (:class:`DecodedImage`: 1-3 bytes per pixel
for 8 bits, unavoidable) and then served region by region like a TIFF, so
that its normalisation and everything after it happen tile by tile
(:func:`open_slide` picks the reader).
"""
import math
import os
from typing import List, NamedTuple, Optional, Tuple

import numpy as np

from custom_modules.data.image_header import header_shape
from custom_modules.data.image_io import TIFF_EXTENSIONS, ImageReadError, read_any_image
from custom_modules.data.intensity import (INPUT_MODES, eight_bit_scaling, grey_8bit, grey_dark_lut,
                                           to_8bit)

SLIDE_PIXELS = 64_000_000  # images above this (and above a tile) are predicted tile by tile
SAMPLE_PIXELS = 1 << 22  # the normalisation statistics come from at most this many pixels


def is_zarr(path: str) -> bool:
    """Whether ``path`` is a Zarr folder (``*.zarr``, ``*.ome.zarr``)."""
    return path.rstrip('/').lower().endswith('.zarr') and os.path.isdir(path)


class SlideOptions(NamedTuple):
    """How whole-slide images are chosen and read.

    Attributes:
        level: the pyramid level (0: full resolution).
        force: predict every image larger than a tile tile by tile, whatever its size.
    """
    level: int = 0
    force: bool = False


def _ome_multiscales(path: str, group) -> dict:
    attrs = group.attrs.asdict()
    scales = attrs.get('multiscales') or attrs.get('ome', {}).get('multiscales')
    if not scales or not scales[0].get('datasets'):
        raise ImageReadError(f'{path}: not an OME-Zarr image (no multiscales datasets in '
                             'its attributes)')
    return scales[0]


class LazyImage:
    """One 2-D image of a TIFF or OME-Zarr, read region by region (a context manager).

    Args:
        path: a TIFF file or an OME-Zarr folder.
        page: the TIFF page (an OME-Zarr has one).
        level: the pyramid level.

    Attributes:
        shape: ``(H, W)`` or ``(H, W, C)`` (C 3 or 4) of :meth:`read`'s whole image.
        dtype: the stored pixel type.
        levels: ``(H, W)`` of every pyramid level.
    """

    def __init__(self, path: str, page: int = 0, level: int = 0) -> None:
        self.path, self.page, self.level, self._tif = path, page, level, None
        try:
            import zarr
            if is_zarr(path):
                if page not in (0, -1):
                    raise ImageReadError(f'{path}: has 1 page, page {page} asked for')
                group = zarr.open_group(path, mode='r')
                scales = _ome_multiscales(path, group)
                arrays = [group[d['path']] for d in scales['datasets']]
                names = [a['name'] if isinstance(a, dict) else a for a in
                         scales.get('axes', 'tczyx'[-arrays[0].ndim:])]
                axes = ''.join(n[0].upper() for n in names)
            else:
                arrays, axes = self._tiff_arrays(path, page)
        except ImageReadError:
            raise
        except Exception as err:  # noqa: BLE001  tifffile and zarr raise several types
            self.close()
            raise ImageReadError(f'{path}: not a readable TIFF or OME-Zarr ({err})') from None
        if not 0 <= level < len(arrays):
            self.close()
            raise ImageReadError(f'{path}: has {len(arrays)} pyramid level'
                                 f'{"s" if len(arrays) != 1 else ""}, --level {level} asked '
                                 'for (levels count from 0)')
        self._array, self._axes = arrays[level], axes.replace('C', 'S')
        self.levels = [self._plane(a.shape) for a in arrays]
        channels = self._array.shape[self._axes.index('S')] if 'S' in self._axes else 1
        self.channels = channels
        self.shape = self.levels[level] + ((channels, ) if channels in (3, 4) else ())
        self.dtype = self._array.dtype

    def _tiff_arrays(self, path: str, page: int) -> Tuple[List, str]:
        import tifffile
        import zarr
        if os.path.splitext(path)[1].lower() not in TIFF_EXTENSIONS:
            raise ImageReadError(f'{path}: only TIFF and OME-Zarr images are read lazily')
        self._tif = tifffile.TiffFile(path)
        count = len(self._tif.pages)
        if not -count <= page < count:
            raise ImageReadError(f'{path}: has {count} page{"s" if count != 1 else ""}, '
                                 f'page {page} asked for (pages count from 0)')
        first = self._tif.pages[page]
        series = next((s for s in self._tif.series if s.pages and s.pages[0] is not None
                       and s.pages[0].index == first.index and len(s.pages) == 1), None)
        if series is None:  # a page of a longer series: itself, without levels
            return [zarr.open(first.aszarr(), mode='r')], first.axes
        return ([zarr.open(series.aszarr(level=k), mode='r') for k in range(len(series.levels))],
                series.axes)

    def _plane(self, shape) -> Tuple[int, int]:
        """``(H, W)`` of an array of this image's axes; refuse other non-single axes."""
        for n, axis in zip(shape, self._axes):
            if n > 1 and axis not in 'YXS':
                raise ImageReadError(f'{self.path}: has shape {tuple(shape)} ({self._axes}), '
                                     'not a 2-D image with 1, 3 or 4 samples')
        if 'Y' not in self._axes or 'X' not in self._axes:
            raise ImageReadError(f'{self.path}: no y and x axes ({self._axes})')
        return int(shape[self._axes.index('Y')]), int(shape[self._axes.index('X')])

    def read(self, y0: int, y1: int, x0: int, x1: int, step: int = 1) -> np.ndarray:
        """The region ``[y0:y1:step, x0:x1:step]``, grey or in cv2's channel order."""
        index = tuple(slice(y0, y1, step) if a == 'Y' else slice(x0, x1, step) if a == 'X'
                      else slice(None) if a == 'S' else 0 for a in self._axes)
        region = np.asarray(self._array[index])
        kept = [a for a in self._axes if a in 'YXS']
        if 'S' in kept:
            region = np.moveaxis(region, kept.index('S'), -1)
            if kept.index('Y') > kept.index('X'):
                region = region.swapaxes(0, 1)
            if self.channels in (1, 2):  # grey (+ alpha)
                region = region[:, :, 0]
            else:  # RGB(A) -> BGR(A)
                region = region[:, :, [2, 1, 0, 3][:self.channels]]
        elif kept.index('Y') > kept.index('X'):
            region = region.T
        return np.ascontiguousarray(region)

    def close(self) -> None:
        if self._tif is not None:
            self._tif.close()
            self._tif = None

    def __enter__(self) -> 'LazyImage':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DecodedImage:
    """An image file without random access (PNG, JPEG, BMP...), decoded once into its raw
    array and read region by region as :class:`LazyImage` reads a TIFF (a context manager).

    The decoded pixels are held as stored (1 byte per pixel and channel for 8
    bits, 2 for 16); :meth:`read` copies a region, so that the normalisation
    and everything after it take memory per tile, not per image.

    Args:
        path: the image file.
        page: its page (0: these formats have one).
        level: the pyramid level (0: these formats have one).
        max_pixels: refuse an image whose header says it has more pixels,
            before decoding it (``None`` or 0: no budget).
    """

    def __init__(self, path: str, page: int = 0, level: int = 0,
                 max_pixels: Optional[int] = None) -> None:
        if level:
            raise ImageReadError(f'{path}: has 1 pyramid level, --level {level} asked for '
                                 '(levels count from 0)')
        self.path, self.page, self.level = path, page, level
        image = read_any_image(path, page, max_pixels)
        self._image = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
        self.shape, self.dtype = self._image.shape, self._image.dtype
        self.levels = [self.shape[:2]]
        self.channels = self.shape[2] if len(self.shape) == 3 else 1

    def read(self, y0: int, y1: int, x0: int, x1: int, step: int = 1) -> np.ndarray:
        """A copy of the region ``[y0:y1:step, x0:x1:step]``."""
        return np.array(self._image[y0:y1:step, x0:x1:step])

    def close(self) -> None:
        self._image = None

    def __enter__(self) -> 'DecodedImage':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_slide(path: str, page: int = 0, level: int = 0, max_pixels: Optional[int] = None):
    """The region reader of a whole-slide image: a :class:`LazyImage` for a TIFF or an
    OME-Zarr, a :class:`DecodedImage` (decoded once, budget checked before) for others.

    ``max_pixels`` is checked here only for a decoded image (from its header); the
    caller checks a lazy one's shape.
    """
    if is_zarr(path) or os.path.splitext(path)[1].lower() in TIFF_EXTENSIONS:
        return LazyImage(path, page, level)
    return DecodedImage(path, page, level, max_pixels)


def read_sample(image: LazyImage, max_pixels: Optional[int] = None) -> np.ndarray:
    """An even sample of ``image`` of at most about ``max_pixels`` (default
    ``SAMPLE_PIXELS``) pixels.

    The largest lower pyramid level that fits, read whole; else every k-th row
    and column of the level, read in bands of rows (memory: the sample and a band).
    """
    h, w = image.shape[:2]
    max_pixels = max_pixels or SAMPLE_PIXELS
    for level in range(image.level + 1, len(image.levels)):
        lh, lw = image.levels[level]
        if lh * lw <= max_pixels:
            with LazyImage(image.path, image.page, level) as lower:
                return lower.read(0, lh, 0, lw)
    step = max(1, math.ceil(math.sqrt(h * w / max_pixels)))
    band = step * max(1, 1024 // step)
    return np.concatenate([image.read(y, min(y + band, h), 0, w, step)
                           for y in range(0, h, band)])


class InputScaling(NamedTuple):
    """What :func:`~custom_modules.data.intensity.to_model_input` computes from the whole
    image, to be applied to each of its tiles.

    Attributes:
        eight_bit: :func:`~custom_modules.data.intensity.eight_bit_scaling`'s result.
        grey_lut: ``grey_dark``'s look-up table (inversion and stretch), else ``None``.
    """
    eight_bit: Optional[Tuple[float, float, bool]]
    grey_lut: Optional[np.ndarray]


def input_scaling(sample: np.ndarray, mode: str = 'rgb') -> InputScaling:
    """The image-wide statistics of ``to_model_input``, from ``sample`` (the image, or
    an even sample of it: :func:`read_sample`)."""
    if mode not in INPUT_MODES:
        raise ValueError(f'unknown input mode {mode!r}, expected one of {INPUT_MODES}')
    eight_bit = eight_bit_scaling(sample)
    lut = grey_dark_lut(grey_8bit(to_8bit(sample, eight_bit))) if mode == 'grey_dark' else None
    return InputScaling(eight_bit, lut)


def image_shape(path: str, page: int = 0, level: int = 0) -> Optional[Tuple[int, ...]]:
    """``(H, W)`` of an image file or OME-Zarr at ``level``, from headers only (``None``:
    they do not tell; reading reports why)."""
    if not is_zarr(path) and not level:
        return header_shape(path, page)
    try:
        with LazyImage(path, page, level) as image:
            return image.shape[:2]
    except ImageReadError:
        return None


def is_whole_slide(path: str, page: int, options: SlideOptions, tiles) -> bool:
    """Whether ``path`` is predicted tile by tile (:func:`open_slide`): an OME-Zarr, a
    pyramid level above 0, or an image file (any format) that ``tiles(h, w)`` cuts in
    tiles and that has more than ``SLIDE_PIXELS`` pixels (any size with
    ``options.force``), from its header."""
    if is_zarr(path) or options.level:
        return True
    shape = header_shape(path, page)
    if not shape or len(shape) != 2:
        return False
    return bool(tiles(*shape)) and (options.force or shape[0] * shape[1] > SLIDE_PIXELS)
