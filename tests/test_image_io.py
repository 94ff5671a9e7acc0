"""Model input: integer images exactly as before; float/NaN/negative ones robust; a pixel
budget checked from the header, before decoding."""
import struct
import sys
import time
import tracemalloc
import zlib

import cv2
import numpy as np
import pytest
import tifffile
from scipy import ndimage

from conftest import REPO
from custom_modules.data import image_io
from custom_modules.data.image_header import header_pixels
from custom_modules.data.image_io import NonFiniteWarning, PixelBudgetError, read_any_image
from custom_modules.data.intensity import to_8bit, to_model_input
from custom_modules.evaluation.measure import grey_intensity
from custom_modules.inference.inferencer import NucleusInferencer
from custom_modules.structures.label_map import LabelMapPrediction

sys.path.insert(0, f'{REPO}/tools')
import predict  # noqa: E402


def old_to_8bit(img):
    """intensity.to_8bit before robust normalisation (float32 copies of the whole image)."""
    if img.dtype == np.uint8:
        return img
    img = img.astype(np.float32)
    peak = float(img.max()) if img.size else 0.0
    scale = 255.0 / peak if peak > 0 else 0.0
    return np.clip(img * scale, 0, 255).astype(np.uint8)


def old_to_model_input(img, mode='rgb'):
    """intensity.to_model_input before it used look-up tables."""
    img = old_to_8bit(img)
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


def typical_images(rng):
    """Fluorescence, brightfield, colour, RGBA, 1-channel, 16-bit and odd-sized images."""
    yield rng.normal(30, 20, (64, 80)).clip(0, 255).astype(np.uint8)
    yield (255 - rng.normal(30, 20, (61, 77)).clip(0, 255)).astype(np.uint8)
    yield rng.integers(0, 256, (50, 70, 3), np.uint8)
    yield np.dstack([rng.integers(0, 256, (40, 30, 3), np.uint8), np.full((40, 30), 255, np.uint8)])
    yield rng.integers(0, 40, (33, 45, 1), np.uint8)
    yield rng.integers(0, 1000, (20, 20), np.uint16)
    yield (rng.normal(3000, 900, (64, 64)).clip(0, 65535)).astype(np.uint16)
    yield rng.integers(0, 65536, (30, 31, 3), np.uint16)
    yield rng.integers(0, 65536, (30, 31, 4), np.uint16)
    yield np.full((8, 9), 7, np.uint16)
    yield np.zeros((8, 9), np.uint16)
    yield rng.integers(0, 2 ** 31, (10, 12), np.int32)  # non-negative signed: as before
    yield rng.integers(0, 2, (10, 12)).astype(bool)


@pytest.mark.parametrize('mode', ['rgb', 'grey_dark'])
def test_integer_images_give_exactly_the_old_model_input(mode):
    rng = np.random.default_rng(0)
    for i, img in enumerate(list(typical_images(rng)) * 3):
        new, old = to_model_input(img, mode), old_to_model_input(img, mode)
        assert new.dtype == np.uint8 and new.shape == old.shape, i
        assert np.array_equal(new, old), f'image {i} ({img.dtype}, {img.shape}) differs'


def test_large_16_bit_image_converted_in_strips_is_unchanged():
    img = np.random.default_rng(1).integers(0, 4096, (1500, 3001), np.uint16)  # several strips
    assert np.array_equal(to_8bit(img), old_to_8bit(img))
    assert np.array_equal(to_model_input(img, 'grey_dark'), old_to_model_input(img, 'grey_dark'))


def nuclei_float(rng, offset=0.0):
    """A float image: nuclei of ~1.0 on a background of ~0.1, plus ``offset``."""
    img = rng.normal(0.1, 0.02, (60, 60)).astype(np.float32)
    img[20:30, 20:30] = 1.0
    return img + np.float32(offset)


def test_float_tiff_with_nan_and_inf_is_not_black(tmp_path):
    img = nuclei_float(np.random.default_rng(2))
    img[0, :3] = np.nan
    img[1, 0] = np.inf
    img[1, 1] = -np.inf
    tifffile.imwrite(tmp_path / 'nan.tif', img)
    with np.errstate(invalid='ignore'):
        assert old_to_model_input(img).max() == 0  # before: scaled by the maximum (NaN): black
    with pytest.warns(NonFiniteWarning, match=r'nan\.tif: 5 NaN or infinite pixels'):
        read = read_any_image(str(tmp_path / 'nan.tif'))
    out = to_model_input(read)
    assert out[25, 25].min() == 255 and out[50, 50].max() < 60  # nuclei bright, background dark
    assert (out[0, :3] == 0).all() and (out[1, :2] == 0).all()  # non-finite: background


def test_negative_and_float_data_are_stretched_by_robust_percentiles():
    rng = np.random.default_rng(3)
    shifted = nuclei_float(rng, offset=-0.5)  # background-subtracted: mostly negative
    assert old_to_model_input(shifted)[25, 25, 0] == 255 and old_to_model_input(shifted)[50, 50, 0] == 0
    out = to_model_input(shifted)
    assert out[25, 25, 0] == 255 and 0 < np.median(out[40:, 40:]) < 60
    signed = (shifted * 1000).astype(np.int16)
    assert np.median(to_8bit(signed)[40:, 40:]) > 0  # negatives not all clipped to 0
    hot = nuclei_float(rng)
    hot[0, 0] = 1e6  # one hot pixel no longer darkens the image to black
    assert old_to_model_input(hot)[25, 25, 0] == 0 and to_model_input(hot)[25, 25, 0] == 255
    assert (to_8bit(np.full((4, 4), np.nan, np.float32)) == 0).all()


def png_bomb(path, width, height):
    """A grey 8-bit PNG of ``width x height`` zeros, a few hundred kilobytes.

    The zlib stream repeats one fully-flushed deflate block, so writing it
    never holds the image either.
    """
    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xffffffff
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', crc)

    rows = 500
    block = bytes((width + 1) * rows)  # filter byte + pixels per row
    comp = zlib.compressobj(9)
    first = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    body = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(height // rows):
        adler = zlib.adler32(block, adler)
    idat = first + body * (height // rows - 1) + comp.flush()[:-4] + struct.pack('>I', adler)
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', idat)
                     + chunk(b'IEND', b''))


def test_small_png_that_decodes_huge_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / 'bomb.png'
    png_bomb(path, 20000, 20000)
    assert path.stat().st_size < 500_000
    monkeypatch.setattr(image_io.cv2, 'imdecode', lambda *args: pytest.fail('decoded'))
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(PixelBudgetError) as err:
        read_any_image(str(path), max_pixels=100_000_000)
    seconds, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 1 and peak < 10_000_000
    message = str(err.value)
    assert '\n' not in message and message.startswith(f'{path}: 20000 x 20000 = 400.0 Mpx')
    assert 'budget of 100.0 Mpx' in message and '--max-pixels' in message


def test_header_sizes_of_every_format(tmp_path):
    img = np.zeros((37, 53, 3), np.uint8)
    for ext in ('png', 'jpg', 'bmp', 'tif', 'webp'):
        cv2.imwrite(str(tmp_path / f'a.{ext}'), img)
        assert header_pixels(str(tmp_path / f'a.{ext}')) == (37 * 53, '53 x 37'), ext
    cv2.imwrite(str(tmp_path / 'p.jpg'), img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert header_pixels(str(tmp_path / 'p.jpg'))[0] == 37 * 53
    tifffile.imwrite(tmp_path / 'pages.tif', np.zeros((3, 20, 30), np.uint16),
                     photometric='minisblack')  # 3 pages
    assert header_pixels(str(tmp_path / 'pages.tif'), page=2) == (600, '30 x 20')
    tifffile.imwrite(tmp_path / 'rgb.tif', np.zeros((20, 30, 3), np.uint8), photometric='rgb')
    assert header_pixels(str(tmp_path / 'rgb.tif')) == (600, '30 x 20')
    (tmp_path / 'junk.png').write_bytes(b'not an image')
    assert header_pixels(str(tmp_path / 'junk.png')) == (None, '')
    with pytest.raises(PixelBudgetError, match=r'a\.jpg: 53 x 37'):
        read_any_image(str(tmp_path / 'a.jpg'), max_pixels=1000)
    with pytest.raises(PixelBudgetError, match=r'pages\.tif: 30 x 20'):
        read_any_image(str(tmp_path / 'pages.tif'), page=1, max_pixels=599)
    assert read_any_image(str(tmp_path / 'a.bmp'), max_pixels=37 * 53).shape == (37, 53, 3)


def test_colour_intensities_measured_in_strips_are_unchanged():
    img = np.random.default_rng(4).integers(0, 65536, (700, 1700, 4), np.uint16)
    old = img[:, :, :3].astype(np.float64) @ np.array([0.114, 0.587, 0.299])
    assert np.array_equal(grey_intensity(img), old)


class Spots:
    """A fake model: bright regions are nuclei."""

    def predict_label_map(self, img):
        label_map, num = ndimage.label(img[..., 0] > 127)
        return LabelMapPrediction(label_map.astype(np.int32), np.full(num, 0.9),
                                  np.zeros(num, np.int64))


def test_predict_refuses_an_image_above_max_pixels_and_does_the_others(tmp_path, capsys):
    png_bomb(tmp_path / 'bomb.png', 20000, 20000)
    cv2.imwrite(str(tmp_path / 'small.png'), np.zeros((20, 30), np.uint8))
    inferencer = NucleusInferencer.from_predictor(Spots())
    out = tmp_path / 'out'
    code = predict.main([str(tmp_path), '--out', str(out), '--max-pixels', '300000000'],
                        inferencer=inferencer)
    err = capsys.readouterr().err
    assert code == 1 and (out / 'labels' / 'small.png').is_file()
    assert not (out / 'labels' / 'bomb.png').exists()
    line = [x for x in err.splitlines() if x.startswith('failed: ')][0]
    assert f'{tmp_path / "bomb.png"}: 20000 x 20000 = 400.0 Mpx exceeds the pixel budget of ' \
        '300.0 Mpx (--max-pixels' in line
    assert predict.main([str(tmp_path), '--out', str(out), '--max-pixels', '-1'],
                        inferencer=inferencer) == 2
    assert '--max-pixels -1: must be >= 0' in capsys.readouterr().err
