"""Image sizes read from file headers, before anything is decoded.

A PNG of a few kilobytes can decode to 30,000 x 30,000 pixels; its size is in
its first 24 bytes. :func:`header_pixels` reads PNG (IHDR), JPEG (the SOF
segment), BMP and TIFF (tifffile's tags, the chosen page) headers, and asks
Pillow's lazy ``Image.open`` about other formats. :func:`budget_message`
says, in one line naming the file, that an image exceeds a pixel budget.
"""
import struct
import warnings
from typing import Optional, Tuple

import numpy as np

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
TIFF_MAGICS = (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+')
# JPEG start-of-frame markers (0xC4 DHT, 0xC8 JPG and 0xCC DAC are not frames).
JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _png_size(head: bytes) -> Optional[Tuple[int, int]]:
    if head[12:16] != b'IHDR' or len(head) < 24:
        return None
    width, height = struct.unpack('>II', head[16:24])
    return height, width


def _bmp_size(head: bytes) -> Optional[Tuple[int, int]]:
    if len(head) < 26:
        return None
    if struct.unpack('<I', head[14:18])[0] == 12:  # BITMAPCOREHEADER
        width, height = struct.unpack('<HH', head[18:22])
    else:
        width, height = struct.unpack('<ii', head[18:26])
    return abs(height), abs(width)


def _jpeg_size(f) -> Optional[Tuple[int, int]]:
    """Walk the segments from the start of the file to the first frame header."""
    f.seek(2)
    while True:
        byte = f.read(1)
        while byte == b'\xff':  # fill bytes before a marker
            byte = f.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue  # markers without a segment
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame
            return None
        length = f.read(2)
        if len(length) < 2:
            return None
        size = struct.unpack('>H', length)[0]
        if marker in JPEG_SOF:
            frame = f.read(5)
            if len(frame) < 5:
                return None
            height, width = struct.unpack('>HH', frame[1:5])
            return height, width
        f.seek(size - 2, 1)


def _tiff_size(path: str, page: int) -> Optional[Tuple[int, ...]]:
    """Shape of one TIFF page without its samples axis (``(H, W)``, ``(Z, H, W)``...)."""
    import tifffile
    try:
        with tifffile.TiffFile(path) as tif:
            if not -len(tif.pages) <= page < len(tif.pages):
                return None  # the reader names the page count
            tiff_page = tif.pages[page]
            shape, axes = tiff_page.shape, tiff_page.axes
    except Exception:  # noqa: BLE001  a broken file: the reader says what is wrong
        return None
    return tuple(int(n) for n, axis in zip(shape, axes) if axis != 'S')


def _pillow_size(path: str) -> Optional[Tuple[int, int]]:
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with Image.open(path) as img:
                width, height = img.size
    except Exception:  # noqa: BLE001  Pillow cannot tell (or refuses a huge image itself)
        return None
    return height, width


def header_shape(path: str, page: int = 0) -> Optional[Tuple[int, ...]]:
    """``(H, W)`` of ``path`` from its header only (a TIFF page of more axes:
    ``(Z, H, W)``...), or ``None`` when the header does not tell (an unreadable
    or unknown file: decoding it reports the problem)."""
    try:
        with open(path, 'rb') as f:
            head = f.read(32)
            size = (_tiff_size(path, page) if head.startswith(TIFF_MAGICS) else
                    _png_size(head) if head.startswith(PNG_SIGNATURE) else
                    _jpeg_size(f) if head.startswith(b'\xff\xd8') else
                    _bmp_size(head) if head.startswith(b'BM') else _pillow_size(path))
    except OSError:
        return None
    return tuple(size) if size else None


def header_pixels(path: str, page: int = 0) -> Tuple[Optional[int], str]:
    """The number of pixels ``path`` decodes to, from its header only.

    Returns:
        ``(pixels, 'W x H')`` (``'W x H x D'``: a TIFF page of more axes),
        or ``(None, '')`` when the header does not tell.
    """
    size = header_shape(path, page)
    if not size:
        return None, ''
    return int(np.prod(size, dtype=np.int64)), ' x '.join(map(str, size[::-1]))


def budget_message(name: str, size: str, pixels: int, max_pixels: int) -> str:
    """One line: the image's size against the budget, and the way to raise it."""
    return (f'{name}: {size} = {pixels / 1e6:,.1f} Mpx exceeds the pixel budget of '
            f'{max_pixels / 1e6:,.1f} Mpx (--max-pixels; predicting takes ~'
            f'{BYTES_PER_PIXEL} bytes of memory per pixel up to 64 Mpx, then a PNG, JPEG or '
            "BMP's decoded pixels, a TIFF's tiles)")


BYTES_PER_PIXEL = 16  # measured: see DEFAULT_MAX_PIXELS in image_io
