"""tools/predict.py and NucleusInferencer on users' own images (PNG, JPEG, TIFF)."""
import csv
import json
import os
import sys

import cv2
import numpy as np
import pytest
import tifffile
from scipy import ndimage

from conftest import REPO
from custom_modules.data.image_io import ImageReadError, read_any_image
from custom_modules.evaluation.measure import MEASUREMENT_COLUMNS, measure_nuclei
from custom_modules.inference import model_zoo
from custom_modules.inference.inferencer import NucleusInferencer
from custom_modules.io.exporters import label_image, nucleus_outlines, read_label_image
from custom_modules.structures.label_map import LabelMapPrediction

sys.path.insert(0, f'{REPO}/tools')
import predict  # noqa: E402

SMOKE = f'{REPO}/configs/dsb_mrcnn_smoke.py'


class BrightSpots:
    """A fake model: every connected bright region of the input is a nucleus."""

    def predict_label_map(self, img):
        label_map, num = ndimage.label(img.max(axis=2) > 127)
        return LabelMapPrediction(label_map.astype(np.int32), np.linspace(0.9, 0.5, num),
                                  np.zeros(num, np.int64))


def spots(shape, centres, value=255, background=10, dtype=np.uint8):
    """A grey image with discs of radius 4 at ``centres``."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    img = np.full(shape, background, dtype)
    for cy, cx in centres:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 16] = value
    return img


@pytest.fixture
def image_folder(tmp_path):
    """Five good images of different kinds and sizes, one corrupt; their sizes and nuclei."""
    folder = tmp_path / 'images'
    folder.mkdir()
    grey = spots((40, 50), [(10, 10), (25, 30)])
    cv2.imwrite(str(folder / 'grey.png'), grey)
    colour = np.stack([spots((48, 64), [(12, 12), (30, 40), (20, 55)])] * 3, -1)
    colour[:, :, 0] //= 3  # a colour image, still bright where the nuclei are
    cv2.imwrite(str(folder / 'colour.jpg'), colour, [cv2.IMWRITE_JPEG_QUALITY, 95])
    tifffile.imwrite(folder / 'deep.tif', spots((36, 44), [(18, 22)], 40000, 1000, np.uint16))
    pages = np.stack([spots((32, 32), [(8, 8), (20, 20), (8, 24)][:n]) for n in (1, 2, 3)])
    tifffile.imwrite(folder / 'stack.tif', pages, photometric='minisblack')  # 3 pages
    rgba = np.dstack([np.stack([spots((30, 34), [(15, 10), (15, 25)])] * 3, -1),
                      np.full((30, 34), 255, np.uint8)])
    cv2.imwrite(str(folder / 'rgba.png'), rgba)
    (folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
    (folder / '.hidden.png').write_bytes(b'skipped')
    (folder / 'notes.txt').write_text('skipped')
    sizes = dict(grey=(40, 50), colour=(48, 64), deep=(36, 44), stack=(32, 32), rgba=(30, 34))
    nuclei = dict(grey=2, colour=3, deep=1, stack=1, rgba=2)
    return str(folder), sizes, nuclei


def run(capsys, *argv):
    """Run the tool with the fake model; return (exit code, stdout, stderr)."""
    code = predict.main([str(a) for a in argv], inferencer=NucleusInferencer.from_predictor(BrightSpots()))
    out, err = capsys.readouterr()
    return code, out, err


ALL = ('--submission', '--coco-json', '--imagej-roi', '--geojson')


def test_folder_of_mixed_images(image_folder, tmp_path, capsys):
    from roifile import roiread
    folder, sizes, nuclei = image_folder
    out = tmp_path / 'out'
    code, stdout, stderr = run(capsys, folder, '--out', out, *ALL)
    assert code == 1
    assert 'broken.png' in stderr and '5 images done, 0 skipped' in stdout and '1 failed' in stdout
    assert sorted(os.listdir(out / 'labels')) == sorted(f'{n}.png' for n in sizes)
    for name, size in sizes.items():
        labels = cv2.imread(str(out / 'labels' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        assert labels.dtype == np.uint16 and labels.shape == size and labels.max() == nuclei[name]
        assert cv2.imread(str(out / 'overlays' / f'{name}.png')).shape == size + (3, )
        rois = roiread(str(out / 'rois' / f'{name}.zip'))
        rois = rois if isinstance(rois, list) else [rois]
        assert sorted(r.name for r in rois) == sorted(str(k) for k in range(1, nuclei[name] + 1))
        features = json.loads((out / 'geojson' / f'{name}.geojson').read_text())['features']
        assert len(features) == nuclei[name]
        ring = np.array(features[0]['geometry']['coordinates'][0])
        assert (ring[0] == ring[-1]).all() and len(ring) >= 4
        assert features[0]['properties']['classification'] == {'name': 'nucleus'}
    with open(out / 'measurements.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == ('image', ) + MEASUREMENT_COLUMNS
    assert len(rows) == sum(nuclei.values())
    deep = [r for r in rows if r['image'] == 'deep'][0]
    assert float(deep['max_intensity']) == 40000  # measured in the image's own 16 bits
    with open(out / 'submission.csv', newline='') as f:
        sub = list(csv.DictReader(f))
    assert {r['ImageId'] for r in sub} == set(sizes) and len(sub) == sum(nuclei.values())
    coco = json.loads((out / 'coco_results.json').read_text())
    assert len(coco) == sum(nuclei.values()) and coco[0]['category_id'] == 1
    assert not [p for p in out.rglob('*') if p.name.endswith('.tmp')]


def test_rerun_skips_and_overwrite_redoes(image_folder, tmp_path, capsys):
    folder, sizes, nuclei = image_folder
    out = tmp_path / 'out'
    run(capsys, folder, '--out', out, '--submission')
    stamp = os.path.getmtime(out / 'labels' / 'grey.png')
    code, stdout, _ = run(capsys, folder, '--out', out, '--submission')
    assert code == 1 and '0 images done, 5 skipped' in stdout
    assert os.path.getmtime(out / 'labels' / 'grey.png') == stamp
    with open(out / 'measurements.csv', newline='') as f:
        assert len(list(csv.DictReader(f))) == sum(nuclei.values())  # skipped images' rows kept
    with open(out / 'submission.csv', newline='') as f:
        assert {r['ImageId'] for r in csv.DictReader(f)} == set(sizes)
    code, stdout, _ = run(capsys, folder, '--out', out, '--geojson')  # a new output: redone
    assert '5 images done' in stdout and (out / 'geojson' / 'grey.geojson').is_file()
    code, stdout, _ = run(capsys, folder, '--out', out, '--overwrite')
    assert '5 images done, 0 skipped' in stdout


def test_a_failing_image_leaves_no_files(image_folder, tmp_path, capsys):
    class FailsOnThree(BrightSpots):
        def predict_label_map(self, img):
            pred = super().predict_label_map(img)
            if len(pred) == 3:
                raise RuntimeError('model failed')
            return pred

    folder, sizes, _ = image_folder
    out = tmp_path / 'out'
    code = predict.main([folder, '--out', str(out), '--geojson'],
                        inferencer=NucleusInferencer.from_predictor(FailsOnThree()))
    assert code == 1 and 'colour.jpg' in capsys.readouterr().err
    assert [p.name for p in out.rglob('colour*')] == []
    assert len(os.listdir(out / 'geojson')) == len(sizes) - 1


def test_page_of_a_multi_page_tiff(image_folder, tmp_path, capsys):
    folder, _, _ = image_folder
    stack = os.path.join(folder, 'stack.tif')
    code, stdout, _ = run(capsys, stack, '--out', tmp_path / 'p1', '--page', '1')
    assert code == 0 and '2 nuclei in 1 images' in stdout
    code, _, stderr = run(capsys, stack, '--out', tmp_path / 'p5', '--page', '5')
    assert code == 1 and 'stack.tif' in stderr and 'has 3 pages' in stderr


def test_empty_image_and_glob(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / 'dark.png'), np.zeros((20, 24), np.uint8))
    code, stdout, _ = run(capsys, tmp_path / '*.png', '--out', tmp_path / 'out', '--submission')
    assert code == 0 and '0 nuclei in 1 images' in stdout
    assert (tmp_path / 'out' / 'submission.csv').read_text() == 'ImageId,EncodedPixels\ndark,\n'


def test_bad_arguments_exit_2(tmp_path, capsys, monkeypatch):
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((8, 8), np.uint8))
    (tmp_path / 'file').write_text('')
    (tmp_path / 'empty').mkdir()
    assert run(capsys, tmp_path / 'a.png', '--out', tmp_path / 'file')[0] == 2
    code, _, stderr = run(capsys, tmp_path / 'empty', '--out', tmp_path / 'o')
    assert code == 2 and 'no images found' in stderr
    assert run(capsys, tmp_path / 'nothing*.png', '--out', tmp_path / 'o')[0] == 2
    monkeypatch.setattr(model_zoo, 'MODELS_DIR', str(tmp_path / 'models'))  # no shipped model
    assert predict.main([str(tmp_path / 'a.png'), '--out', str(tmp_path / 'o')]) == 2
    stderr = capsys.readouterr().err
    assert 'config.py' in stderr and 'weights.safetensors' in stderr and '--checkpoint' in stderr
    assert predict.main([str(tmp_path / 'a.png'), '--out', str(tmp_path / 'o'), '--config', SMOKE]) == 2
    assert not (tmp_path / 'o').exists()


def test_read_any_image_tiff_orders_and_errors(tmp_path):
    rgb = np.zeros((6, 7, 3), np.uint16)
    rgb[..., 0] = 60000  # red in tifffile's RGB order
    tifffile.imwrite(tmp_path / 'rgb.tif', rgb, photometric='rgb')
    img = read_any_image(str(tmp_path / 'rgb.tif'))
    assert img.dtype == np.uint16 and img.shape == (6, 7, 3) and (img[..., 2] == 60000).all()
    tifffile.imwrite(tmp_path / 'planar.tif', np.moveaxis(rgb, -1, 0), photometric='rgb',
                     planarconfig='separate')
    assert (read_any_image(str(tmp_path / 'planar.tif')) == img).all()
    (tmp_path / 'bad.tif').write_bytes(b'II*\x00garbage')
    with pytest.raises(ImageReadError, match='bad.tif'):
        read_any_image(str(tmp_path / 'bad.tif'))
    cv2.imwrite(str(tmp_path / 'one.png'), np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageReadError, match='has 1 page'):
        read_any_image(str(tmp_path / 'one.png'), page=1)


def test_label_image_beyond_16_bits_is_tiff(tmp_path):
    label_map = np.zeros((3, 4), np.int32)
    label_map[1, 2] = 70000
    ext, data = label_image(label_map)
    (tmp_path / f'l{ext}').write_bytes(data)
    assert ext == '.tif' and (read_label_image(str(tmp_path / f'l{ext}')) == label_map).all()


def test_measurements_and_outlines():
    label_map = np.zeros((10, 12), np.int32)
    label_map[2:5, 3:7] = 1
    label_map[7, 9] = 2  # a single pixel
    pred = LabelMapPrediction(label_map, np.array([0.8, 0.6]), np.array([0, 1]))
    rows = measure_nuclei(pred, np.full((10, 12), 7, np.uint16), ('nucleus', 'other'))
    assert [r['area'] for r in rows] == [12, 1] and [r['class'] for r in rows] == ['nucleus', 'other']
    assert rows[0]['bbox_min_row'] == 2 and rows[0]['bbox_max_col'] == 7 and rows[1]['mean_intensity'] == 7
    lines = nucleus_outlines(label_map)
    assert lines[1][:, 0].min() == 3 and lines[1][:, 0].max() == 7  # pixel-corner x of columns 3..6
    assert len(lines[2]) == 5  # a diamond inside the single pixel, closed


@pytest.mark.slow
def test_inferencer_with_a_real_config(tmp_path, smoke_checkpoints):
    ckpt = smoke_checkpoints['mrcnn']  # untrained
    img = spots((48, 40), [(20, 20)])
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    inferencer = NucleusInferencer(SMOKE, str(ckpt))
    results = inferencer([str(tmp_path / 'a.png'), np.dstack([img] * 3)])
    assert [r['image_path'] for r in results] == [str(tmp_path / 'a.png'), None]
    for r in results:
        assert r['label_map'].shape == (48, 40) and len(r['scores']) == len(r['measurements'])
    code = predict.main([str(tmp_path / 'a.png'), '--out', str(tmp_path / 'out'),
                         '--config', SMOKE, '--checkpoint', str(ckpt), '--tile', '0'])
    assert code == 0 and (tmp_path / 'out' / 'labels' / 'a.png').is_file()


def test_a_folder_written_from_python_is_not_redone_by_the_tool(tmp_path, capsys):
    """predict_to_folder and tools/predict.py record the same settings ('20' and 20 alike),
    so the tool skips what Python wrote with the same model and options."""
    cv2.imwrite(str(tmp_path / 'a.png'), spots((48, 40), [(20, 20)]))
    inferencer = NucleusInferencer('nucleiseg_unet', diameter='20')
    inferencer.predict_to_folder(tmp_path / 'a.png', tmp_path / 'out')
    code = predict.main([str(tmp_path / 'a.png'), '--out', str(tmp_path / 'out'),
                         '--model', 'nucleiseg_unet', '--diameter', '20.0'])
    assert code == 0 and '0 images done, 1 skipped' in capsys.readouterr().out
