"""CSV cells that would start a spreadsheet formula are escaped in every CSV the tools write."""
import csv
import os
import os.path as osp
import pickle

import numpy as np

from conftest import load_tool
from custom_modules.io.csv_cells import csv_text, safe_cell
from custom_modules.io.exporters import measurements_csv, read_saved_prediction
from custom_modules.io.submission import submission_csv
from data_prep import prepare_dsb
from test_export import _pred


def test_safe_cell_prefixes_formula_starts_only():
    for text in ('=1+1', '+1', '-x', '@SUM(A1)', '\tx', '\rx'):
        assert safe_cell(text) == "'" + text
    for text in ('plain', "'quoted", 'a=b', '0123', ''):
        assert safe_cell(text) == text
    assert safe_cell(-0.5) == '-0.5' and safe_cell(3) == '3'  # numbers stay numbers
    rows = list(csv.reader(csv_text(('name', 'v'), [('=cmd,"x"', -1)]).splitlines()))
    assert rows == [['name', 'v'], ["'=cmd,\"x\"", '-1']]


def test_measurements_and_submission_escape_and_read_back(tmp_path):
    label_map = np.zeros((6, 6), np.int32)
    label_map[1:3, 1:3] = 1
    text = measurements_csv('-img', [dict(label=1, **{'class': '+cls'}, score=0.5, area=4,
                                          centroid_y=1.5, centroid_x=1.5, bbox_min_row=1,
                                          bbox_min_col=1, bbox_max_row=3, bbox_max_col=3,
                                          equivalent_diameter=2.2, eccentricity=0,
                                          solidity=1, mean_intensity=1, max_intensity=1)])
    row = list(csv.DictReader(text.splitlines()))[0]
    assert row['image'] == "'-img" and row['class'] == "'+cls"
    (tmp_path / 'l.csv').write_text(text)
    import cv2
    cv2.imwrite(str(tmp_path / 'l.png'), label_map.astype(np.uint16))
    pred = read_saved_prediction(str(tmp_path / 'l.png'), str(tmp_path / 'l.csv'),
                                 ('nucleus', '+cls'))
    assert list(pred.classes) == [1]
    kaggle_id = '0a7d30b252359a10fd298b638b90cb9ada3acced4e0c0e5a3692013f432ee4e9'
    lines = submission_csv([('@x', label_map), (kaggle_id, label_map)]).splitlines()
    assert lines[1].startswith("'@x,") and lines[2].startswith(kaggle_id + ',')  # Kaggle's exact


def test_export_rle_escapes_image_ids(tmp_path, capsys):
    module = load_tool('tools/export_rle.py')
    mask = np.zeros((1, 10, 10), bool)
    mask[0, 2:6, 2:6] = True
    path = tmp_path / 'p.pkl'
    path.write_bytes(pickle.dumps([_pred('=HYPERLINK(1)', mask, [0.8]),
                                   _pred('plain', mask, [0.7])]))
    assert module.main([str(path), '--out', str(tmp_path / 'sub.csv')]) == 0
    with open(tmp_path / 'sub.csv', newline='') as f:
        assert [r[0] for r in csv.reader(f)] == ['ImageId', "'=HYPERLINK(1)", 'plain']


def test_data_prep_folds_csv_escapes_image_ids(synthetic_set, tmp_path, capsys):
    src, _ = synthetic_set
    os.rename(osp.join(src, 'img001', 'images', 'img001.png'),
              osp.join(src, 'img001', 'images', '-img001.png'))
    os.rename(osp.join(src, 'img001'), osp.join(src, '-img001'))
    out = tmp_path / 'out'
    assert prepare_dsb.main([src, str(out), '--folds', '2', '--workers', '1']) == 0
    with open(out / 'folds.csv', newline='') as f:
        ids = [row['img_id'] for row in csv.DictReader(f)]
    assert "'-img001" in ids and 'img000' in ids
