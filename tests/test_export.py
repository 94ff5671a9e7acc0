"""The exporter writes only valid submissions, atomically."""
import csv
import os
import pickle

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from conftest import run_tool
from custom_modules.rle import kaggle_decode
from custom_modules.submission import check_submission, prediction_rows


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
    run_tool('tools/export_rle.py', str(path), '--out', str(out))
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
    proc = run_tool('tools/export_rle.py', str(bad), '--out', str(out), check=False)
    assert proc.returncode == 2 and 'bad.pkl' in proc.stderr
    assert not os.path.exists(out) and not os.path.exists(str(out) + '.tmp')
