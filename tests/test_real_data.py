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


# Grey brightfield images of fold 0 (median nucleus diameter 19 and 16 px, cells about
# 100 px around them): the shipped models' size probe took the cells for nuclei.
BRIGHTFIELD = ('2a1a294e21d76efd0399e4eb321b45f44f7510911acd92c988480195c5b4c812',
               '3594684b9ea0e16196f498815508f8d364d55fea2933a2e782122b6f00375d04')


@pytest.mark.slow
@needs_dsb
def test_size_probe_keeps_brightfield_images_at_their_size():
    from custom_modules.data.image_io import read_any_image
    from custom_modules.data.intensity import to_model_input
    from custom_modules.inference.inferencer import NucleusInferencer
    inferencer = NucleusInferencer('nucleiseg_unet', diameter='auto')
    for image_id in BRIGHTFIELD:
        path = osp.join(DSB_ROOT, 'stage1_train', image_id, 'images', f'{image_id}.png')
        img = to_model_input(read_any_image(path), inferencer.input_mode)
        assert inferencer.predictor.factor(img) == 1.0  # the probe alone
        assert 12 <= inferencer.last_diameter() <= 30, (image_id, inferencer.predictor.last_estimate)
