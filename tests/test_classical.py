"""The classical baseline: custom_modules/models/classical.py and tools/classical_baseline.py."""
import json
import os

import numpy as np
import pytest

from conftest import load_tool, render, write_layout
from custom_modules.evaluation.metric import score_label_maps
from custom_modules.models.classical import ClassicalParams, param_grid, segment_nuclei
from custom_modules.structures.rle import coco_encode_label_map


def _tool():
    return load_tool('tools/classical_baseline.py')


def two_discs(shape=(64, 96), radius=12, gap=22) -> np.ndarray:
    """Two touching discs (centres ``gap`` apart, less than two radii) labelled 1 and 2."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    cy, cx = shape[0] // 2, shape[1] // 2 - gap // 2
    label = np.zeros(shape, np.int32)
    label[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = 1
    label[((yy - cy) ** 2 + (xx - cx - gap) ** 2 <= radius ** 2) & (label == 0)] = 2
    return label


def test_touching_discs_are_split():
    label = two_discs()
    assert ((label == 1) & np.roll(label == 2, -1, axis=1)).any()  # they touch
    img = render(label, np.random.default_rng(0))
    for params in (ClassicalParams(), ClassicalParams(sigma=0.0, min_distance=5, h=1.0)):
        pred = segment_nuclei(img, params)
        assert pred.dtype == np.int32 and pred.max() == 2
        assert score_label_maps(label, pred).mean() > 0.7


def test_bright_background_and_16_bit():
    label = two_discs()
    rng = np.random.default_rng(1)
    for img in (render(label, rng, bright=True), render(label, rng, colour=True, bright=True),
                render(label, rng)[:, :, 0].astype(np.uint16) * 200):
        pred = segment_nuclei(img)
        assert pred.max() == 2, img.shape
        assert score_label_maps(label, pred).mean() > 0.7


@pytest.mark.parametrize('img', [np.zeros((40, 50), np.uint8), np.full((40, 50, 3), 200, np.uint8),
                                 np.zeros((40, 50, 4), np.uint16), np.zeros((0, 0), np.uint8)])
def test_empty_image_gives_no_nuclei(img):
    pred = segment_nuclei(img)
    assert pred.shape == img.shape[:2] and pred.max(initial=0) == 0


def test_small_objects_are_dropped():
    label = two_discs()
    label[5:8, 5:8] = 3  # a 9-pixel speck
    pred = segment_nuclei(render(label, np.random.default_rng(2)), ClassicalParams(min_area=15))
    assert pred.max() == 2 and np.array_equal(np.unique(pred), [0, 1, 2])


def test_params_are_checked():
    assert ClassicalParams(min_distance=4.0).min_distance == 4
    for bad in (dict(min_distance=0), dict(sigma=-1), dict(h=float('nan')), dict(min_area=2.5),
                dict(compactness='x'), dict(min_distance=True)):
        with pytest.raises(ValueError):
            ClassicalParams(**bad)
    with pytest.raises(ValueError, match='unknown parameter'):
        ClassicalParams.from_dict(dict(sigma=1.0, radius=3))
    params = ClassicalParams(sigma=0.5, min_distance=7, h=1.5, min_area=20, compactness=0.01)
    assert ClassicalParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params
    assert len(param_grid(dict(sigma=(0.0, 1.0), h=(0.0, 1.0, 2.0)))) == 6


@pytest.fixture
def labelled_set(tmp_path):
    """Six images of touching disc pairs (plus noise discs), written with a COCO JSON."""
    rng = np.random.default_rng(3)
    labels = []
    for i in range(6):
        label = two_discs(shape=(64 + 8 * (i % 2), 96), radius=10 + i % 3, gap=18 + i % 3)
        labels.append(label)
    src = tmp_path / 'images'
    ids = write_layout(str(src), labels, rng=rng)
    images, anns = [], []
    for k, (image_id, label) in enumerate(zip(ids, labels), start=1):
        images.append(dict(id=k, file_name=f'{image_id}/images/{image_id}.png',
                           kind='grey_dark' if k % 3 else 'colour'))
        anns += [dict(id=len(anns) + 1, image_id=k, category_id=1, segmentation=rle)
                 for rle in coco_encode_label_map(label).values()]
    ann = tmp_path / 'set.json'
    ann.write_text(json.dumps(dict(images=images, annotations=anns,
                                   categories=[dict(id=1, name='nucleus')])))
    return str(ann), str(src), labels


def test_tuning_picks_the_best_parameters(labelled_set, tmp_path, capsys, monkeypatch):
    ann, src, labels = labelled_set
    tool = _tool()
    # min_distance 40 merges each pair; 4 splits it: the grid has a clear winner
    grid = dict(sigma=(0.0, 1.0), min_distance=(40, 4), h=(0.0, ))
    monkeypatch.setattr(tool, 'DEFAULT_GRID', grid)
    saved = tmp_path / 'out' / 'params.json'
    assert tool.main([ann, src, '--tune', ann, '--tune-images', '4', '--save-params',
                      str(saved)]) == 0
    out = capsys.readouterr().out
    assert 'tuned on 4 images' in out and 'colour' in out and 'grey_dark' in out
    data = json.loads(saved.read_text())
    assert data['tuned_on'] == ann and data['tune_images'] == 4
    best = ClassicalParams.from_dict(data['params'])
    assert best.min_distance == 4
    # what it picked scores best on the images it tuned on, computed independently
    samples = tool.load_samples(json.loads(open(ann).read()), ann, src, 4, 0)
    results = tool.tune(samples, param_grid(dict(grid, min_area=(ClassicalParams().min_area, ))))
    assert results[0][0] == best and len(results) == 4
    assert [t['all'] for _, t in results] == sorted((t['all'] for _, t in results), reverse=True)
    assert abs(data['tune_score'] - results[0][1]['all']) < 1e-4
    # --min-area fixes that field in the grid
    assert tool.main([ann, src, '--tune', ann, '--min-area', '25', '--save-params',
                      str(saved)]) == 0
    assert json.loads(saved.read_text())['params']['min_area'] == 25


def test_params_file_round_trip(labelled_set, tmp_path, capsys):
    ann, src, _ = labelled_set
    main = _tool().main
    saved = tmp_path / 'params.json'
    params = ClassicalParams(sigma=0.0, min_distance=4, h=1.0, min_area=12)
    saved.write_text(json.dumps(dict(params=params.to_dict())))
    assert main([ann, src, '--params', str(saved), '--out', str(tmp_path / 'a.pkl')]) == 0
    first = capsys.readouterr().out
    again = tmp_path / 'again.json'
    assert main([ann, src, '--params', str(saved), '--save-params', str(again)]) == 0
    assert json.loads(again.read_text())['params'] == params.to_dict()
    assert capsys.readouterr().out.splitlines()[:3] == first.splitlines()[:3]
    assert main([ann, src, '--params', str(saved), '--min-area', '3', '--save-params',
                 str(again)]) == 0
    assert json.loads(again.read_text())['params']['min_area'] == 3


def test_bad_params_file(labelled_set, tmp_path, capsys):
    ann, src, _ = labelled_set
    main = _tool().main
    out = tmp_path / 'out' / 'preds.pkl'
    cases = {'missing.json': None, 'bad.json': '{"params": ', 'flat.json': '{"sigma": 1.0}',
             'unknown.json': '{"params": {"sigma": 1.0, "radius": 4}}',
             'value.json': '{"params": {"min_distance": 0}}'}
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        assert main([ann, src, '--params', str(path), '--out', str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count('\n') == 1 and err.startswith(f'error: {path}: '), err
        assert 'Traceback' not in err
    assert not out.parent.exists()


def test_tune_needs_annotations_and_refuses_half_writes(labelled_set, tmp_path, capsys):
    ann, src, _ = labelled_set
    main = _tool().main
    bare = tmp_path / 'bare.json'
    bare.write_text(json.dumps(dict(images=json.loads(open(ann).read())['images'])))
    saved = tmp_path / 'params.json'
    assert main([ann, src, '--tune', str(bare), '--save-params', str(saved)]) == 2
    assert f'{bare}: no annotations to tune on' in capsys.readouterr().err
    os.mkdir(tmp_path / 'preds.pkl')  # the pickle cannot be written: neither file is
    assert main([ann, src, '--save-params', str(saved), '--out', str(tmp_path / 'preds.pkl')]) == 2
    assert 'a folder is in the way' in capsys.readouterr().err
    assert not saved.exists()
    with pytest.raises(SystemExit):
        main([ann, src, '--tune-images', '3'])  # without --tune
    with pytest.raises(SystemExit):
        main([ann, src, '--tune', ann, '--params', str(saved)])
