"""data_prep over the real DSB2018 stage-1 training set (skipped without it)."""
import csv
import json
import os.path as osp

import pytest

from conftest import DSB_ROOT, call_tool, needs_dsb


@pytest.mark.slow
@needs_dsb
def test_real_stage1_train(tmp_path):
    src = osp.join(DSB_ROOT, 'stage1_train')
    groups = osp.join(DSB_ROOT, 'mosaic_groups.csv')
    proc = call_tool('data_prep/prepare_dsb.py', src, str(tmp_path), '--groups', groups,
                     '--folds', '5', '--fold', '1')
    full = json.loads((tmp_path / 'full.json').read_text())
    assert len(full['images']) == 563
    assert 'images: 563' in proc.stdout
    # every mask file becomes a nucleus unless the summary says it was dropped
    masks = int(proc.stdout.split(' masks\n')[0].rsplit(' ', 1)[1])
    assert len(full['annotations']) <= masks and len(full['annotations']) > 0.99 * masks
    folds = {r['img_id']: int(r['fold']) for r in csv.DictReader(open(tmp_path / 'folds.csv'))}
    by_group = {}
    for r in csv.DictReader(open(groups)):
        if r['mosaic_idx']:
            by_group.setdefault(r['mosaic_idx'], set()).add(folds[r['img_id']])
    assert all(len(f) == 1 for f in by_group.values()), 'a mosaic was split across folds'
    val = json.loads((tmp_path / 'val_fold1.json').read_text())
    assert {im['image_id'] for im in val['images']} == {i for i, f in folds.items() if f == 1}
    kinds = {im['kind'] for im in val['images']}
    assert kinds == {'grey_dark', 'grey_bright', 'colour'}, kinds
