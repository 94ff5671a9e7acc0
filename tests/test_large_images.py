"""Large PNG / JPEG / BMP through the whole-slide path, its memory, and slides from Python."""
import json
import os

import cv2
import numpy as np
import pytest
import tifffile

from spots_model import spots_inferencer
from test_image_io import png_bomb
from test_slide import blobs, csv_rows, png_labels, run, run_script, zarr_labels
from custom_modules.data.image_io import ImageReadError
from custom_modules.data.slide_io import DecodedImage, open_slide


@pytest.mark.parametrize('ext', ['png', 'bmp'])
def test_a_png_or_bmp_slide_gives_the_in_memory_labels(tmp_path, ext):
    """--whole-slide on a format without random access: decoded once, prepared per tile,
    the labels of the whole-image path exactly, OME-Zarr out."""
    cv2.imwrite(str(tmp_path / f'm.{ext}'), blobs((1100, 900), 150))
    assert run(tmp_path / f'm.{ext}', '--out', tmp_path / 'here') == 0
    assert run(tmp_path / f'm.{ext}', '--out', tmp_path / 'slide', '--whole-slide') == 0
    here, slide = png_labels(tmp_path / 'here', 'm'), zarr_labels(tmp_path / 'slide', 'm')
    assert here.max() > 100
    np.testing.assert_array_equal(here, slide)
    a = csv_rows(tmp_path / 'here/measurements/m.csv')
    b = csv_rows(tmp_path / 'slide/measurements/m.csv')
    assert [r[:4] for r in a] == [r[:4] for r in b]
    assert sorted(os.listdir(tmp_path / 'slide/labels')) == ['m.ome.zarr']


def test_reruns_of_a_png_slide(tmp_path, capsys):
    """The same settings skip it (its .ome.zarr counts); without --whole-slide it is redone
    in memory, the summary says why, and the .ome.zarr gives way to the .png."""
    cv2.imwrite(str(tmp_path / 'r.png'), blobs((700, 600), 40))
    argv = (tmp_path / 'r.png', '--out', tmp_path / 'o')
    assert run(*argv, '--whole-slide') == 0
    assert json.loads((tmp_path / 'o/run_settings/r.json').read_text())['whole_slide'] is True
    capsys.readouterr()
    assert run(*argv, '--whole-slide') == 0
    assert '0 images done, 1 skipped' in capsys.readouterr().out
    assert run(*argv) == 0
    summary = capsys.readouterr().out
    assert '1 images done (1 redone: ' in summary and 'whole_slide' in summary
    assert os.listdir(tmp_path / 'o/labels') == ['r.png']


def test_a_png_has_one_level_and_a_bomb_is_refused_before_decoding(tmp_path, capsys,
                                                                   monkeypatch):
    cv2.imwrite(str(tmp_path / 'l.png'), blobs((300, 300), 5))
    assert run(tmp_path / 'l.png', '--out', tmp_path / 'o', '--level', '1') == 1
    assert 'l.png: has 1 pyramid level, --level 1 asked for' in capsys.readouterr().err
    png_bomb(tmp_path / 'bomb.png', 30000, 30000)  # 900 Mpx above 64: the slide path
    monkeypatch.setattr('custom_modules.data.image_io.read_image_file',
                        lambda path: pytest.fail('decoded'))
    with pytest.raises(ImageReadError, match='30000 x 30000 = 900.0 Mpx exceeds the pixel'):
        open_slide(str(tmp_path / 'bomb.png'), max_pixels=400_000_000)
    assert run(tmp_path / 'bomb.png', '--out', tmp_path / 'b') == 1
    assert 'bomb.png: 30000 x 30000 = 900.0 Mpx exceeds' in capsys.readouterr().err


def test_decoded_image_reads_regions_as_a_lazy_tiff(tmp_path):
    bgr = blobs((300, 200), 10)
    cv2.imwrite(str(tmp_path / 'd.png'), bgr)
    tifffile.imwrite(tmp_path / 'd.tif', bgr[:, :, ::-1], tile=(64, 64), photometric='rgb')
    with open_slide(str(tmp_path / 'd.png')) as png, open_slide(str(tmp_path / 'd.tif')) as tif:
        assert isinstance(png, DecodedImage) and png.shape == tif.shape == (300, 200, 3)
        region = png.read(10, 250, 5, 190, 3)
        np.testing.assert_array_equal(region, tif.read(10, 250, 5, 190, 3))
        region[:] = 0  # a copy
        assert png.read(10, 250, 5, 190, 3).any()


@pytest.mark.slow
def test_a_small_png_that_decodes_huge_is_prepared_tile_by_tile(tmp_path):
    """8,200 x 8,200 grey (67 Mpx, just above the slide threshold; ~90 KB): the run's peak
    above its start stays below the decoded pixels (64 MiB) + 300 MiB. Preparing it whole
    (before) took 842 MiB above the start (13 bytes per pixel); tile by tile 270 MiB."""
    side = 8200
    img = np.zeros((side, side), np.uint8)
    for cy, cx in np.random.default_rng(0).integers(0, side, size=(60, 2)):
        cv2.circle(img, (int(cx), int(cy)), 10, 200, -1)
    cv2.imwrite(str(tmp_path / 'huge.png'), img)
    del img
    assert os.path.getsize(tmp_path / 'huge.png') < 1 << 20
    done = run_script(tmp_path, tmp_path / 'huge.png', '--out', tmp_path / 'o')
    assert done.returncode == 0, done.stderr[-2000:]
    base, peak, code = map(int, done.stdout.split('PEAK')[1].split())
    print(f'{(peak - base) / 2**20:.0f} MiB above the start, {(peak - base) / side**2:.1f} B/px')
    assert code == 0 and peak - base < side * side + (300 << 20)
    assert zarr_labels(tmp_path / 'o', 'huge').max() == 60


def test_the_inferencer_writes_what_predict_writes(tmp_path):
    """NucleusInferencer.predict_to_folder: a slide (TIFF --whole-slide, a PNG slide) gives
    the files of tools/predict.py, by its function."""
    bgr = blobs((900, 800), 80, seed=7)
    tifffile.imwrite(tmp_path / 's.tif', bgr[:, :, ::-1], tile=(256, 256), photometric='rgb')
    cv2.imwrite(str(tmp_path / 'p.png'), bgr)
    assert run(tmp_path / 's.tif', tmp_path / 'p.png', '--out', tmp_path / 'tool',
               '--whole-slide', '--geojson') == 0
    inferencer = spots_inferencer()
    for name in ('s.tif', 'p.png'):
        written = inferencer.predict_to_folder(tmp_path / name, tmp_path / 'py',
                                               whole_slide=True, geojson=True)
        stem = name.split('.')[0]
        assert f'{tmp_path}/py/labels/{stem}.ome.zarr' in written
        np.testing.assert_array_equal(zarr_labels(tmp_path / 'py', stem),
                                      zarr_labels(tmp_path / 'tool', stem))
        for sub in (f'measurements/{stem}.csv', f'geojson/{stem}.geojson'):
            assert (tmp_path / 'py' / sub).read_bytes() == (tmp_path / 'tool' / sub).read_bytes()
    settings = json.loads((tmp_path / 'py/run_settings/p.json').read_text())
    assert settings['whole_slide'] is True and settings['page'] == 0
    with pytest.raises(ImageReadError, match='has 1 pyramid level, --level 2 asked for'):
        inferencer.predict_to_folder(tmp_path / 'p.png', tmp_path / 'py', level=2)
