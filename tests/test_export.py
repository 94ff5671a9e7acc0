"""The exporter writes only valid submissions, atomically."""
import csv
import json
import os
import pickle

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from conftest import call_tool
from custom_modules.io.submission import check_submission, prediction_rows
from custom_modules.structures.rle import kaggle_decode


def _pred(name, masks, scores):
    masks = np.asarray(masks, np.uint8)
    rles = [mask_utils.encode(np.asfortranarray(m)) for m in masks]
    return dict(img_path=f'/x/{name}.png', img_id=0, ori_shape=masks.shape[1:] if len(masks) else (8, 8),
                pred_instances=dict(masks=rles, scores=torch.as_tensor(scores)))


def test_rows_resolve_overlaps_and_cover_every_image(tmp_path):
    a = np.zeros((2, 10, 10), bool)
    a[0, 0:6, 0:6] = True
    a[1, 3:9, 3:9] = True  # overlaps a[0]; higher score wins the overlap
    preds = [_pred('one', a, [0.5, 0.9]), _pred('none', np.zeros((0, 8, 8)), [])]
    rows, shapes = prediction_rows(preds, min_area=3)
    assert check_submission(rows, shapes) == []
    assert [r[0] for r in rows] == ['one', 'one', 'none'] and rows[2][1] == ''
    first = kaggle_decode(rows[0][1], (10, 10))
    assert first.sum() == 36 and rows[0][2] == pytest.approx(0.9)
    path = tmp_path / 'p.pkl'
    path.write_bytes(pickle.dumps(preds))
    out = tmp_path / 'sub.csv'
    call_tool('tools/export_rle.py', str(path), '--out', str(out))
    assert list(csv.reader(open(out)))[3] == ['none', '']


def test_checker_catches_every_rule():
    shapes = {'a': (4, 4), 'b': (4, 4)}
    assert any('no row' in p for p in check_submission([('a', '1 2', 0)], shapes))
    assert any('overlap' in p for p in check_submission(
        [('a', '1 3', 0), ('a', '3 2', 0), ('b', '', 0)], shapes))
    assert any('not sorted' in p for p in check_submission(
        [('a', '5 1 1 2', 0), ('b', '', 0)], shapes))
    assert any('empty EncodedPixels beside' in p for p in check_submission(
        [('a', '1 2', 0), ('a', '', 0), ('b', '', 0)], shapes))


def test_bad_predictions_file_writes_nothing(tmp_path):
    bad = tmp_path / 'bad.pkl'
    bad.write_bytes(b'garbage')
    out = tmp_path / 'sub.csv'
    proc = call_tool('tools/export_rle.py', str(bad), '--out', str(out), check=False)
    assert proc.returncode == 2 and 'bad.pkl' in proc.stderr
    assert not os.path.exists(out) and not os.path.exists(str(out) + '.tmp')


@pytest.mark.parametrize('content, what', [
    ({'a': 1}, 'got a dict object'), (3, 'got a int object'), ([1, 2], 'item 0 is a int object'),
    ([], 'got an empty list'), ([{'img_path': '/x/a.png'}], "item 0 lacks ['ori_shape']")])
def test_not_a_predictions_list_is_refused(tmp_path, content, what):
    path = tmp_path / 'p.pkl'
    path.write_bytes(pickle.dumps(content))
    out = tmp_path / 'sub.csv'
    proc = call_tool('tools/export_rle.py', str(path), '--out', str(out), check=False)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr
    assert 'p.pkl: expected the list written by tools/test.py --out' in proc.stderr
    assert what in proc.stderr
    assert os.listdir(tmp_path) == ['p.pkl']


def _one_prediction(tmp_path):
    mask = np.zeros((1, 10, 10), bool)
    mask[0, 2:6, 2:6] = True
    path = tmp_path / 'p.pkl'
    path.write_bytes(pickle.dumps([_pred('one', mask, [0.8])]))
    return path


def test_outputs_in_missing_folders_are_made(tmp_path):
    path = _one_prediction(tmp_path)
    out, coco = tmp_path / 'new' / 'sub.csv', tmp_path / 'other' / 'deep' / 'res.json'
    call_tool('tools/export_rle.py', str(path), '--out', str(out), '--coco-json', str(coco))
    assert list(csv.reader(open(out)))[1][0] == 'one'
    assert len(json.loads(coco.read_text())) == 1


def test_both_files_or_neither(tmp_path):
    path = _one_prediction(tmp_path)
    out, coco = tmp_path / 'sub.csv', tmp_path / 'res.json'
    coco.mkdir()  # the JSON cannot be written: the CSV must not be either
    proc = call_tool('tools/export_rle.py', str(path), '--out', str(out), '--coco-json', str(coco),
                     check=False)
    assert proc.returncode == 2 and 'res.json: a folder is in the way' in proc.stderr, proc.stderr
    assert sorted(os.listdir(tmp_path)) == ['p.pkl', 'res.json']
    proc = call_tool('tools/export_rle.py', str(path), '--out', str(out), '--coco-json', str(out),
                     check=False)
    assert proc.returncode == 2 and 'same file' in proc.stderr
