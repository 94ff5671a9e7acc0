"""Image types (data_prep/image_types.py) and the type-held-out split of prepare_dsb.py."""
import csv
import json
import os.path as osp

import pytest

from conftest import DSB_ROOT, REPO, needs_dsb
from data_prep import image_types, prepare_dsb

TYPES = {'img000': 'dense', 'img001': 'dense', 'img002': 'colour', 'img003': 'sparse',
         'img004': 'sparse', 'img005': 'colour', 'img006': 'big', 'img007': 'big'}
GROUPS = 'img_id,mosaic_idx\nimg000,1\nimg001,1\nimg003,2\nimg004,2\nimg006,\n'


def run(capsys, tool, *argv):
    """``tool.main`` in this process with one worker; ``(exit code, stdout, stderr)``."""
    code = tool.main([str(a) for a in argv] + ['--workers', '1'])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def typed_set(synthetic_set, tmp_path):
    """The synthetic set, a types CSV and a groups CSV."""
    src, _ = synthetic_set
    types = tmp_path / 'types.csv'
    types.write_text('image_id,type,group\n' + ''.join(f'{i},{t},\n' for i, t in TYPES.items()))
    groups = tmp_path / 'groups.csv'
    groups.write_text(GROUPS)
    return src, types, groups


def ids_of(path):
    with open(path) as f:
        coco = json.load(f)
    ids = {im['id'] for im in coco['images']}
    assert all(a['image_id'] in ids for a in coco['annotations'])
    return {im['image_id'] for im in coco['images']}


def test_held_out_types_in_val_rest_in_train(typed_set, tmp_path, capsys):
    src, types, groups = typed_set
    out = tmp_path / 'out'
    code, stdout, err = run(capsys, prepare_dsb, src, out, '--folds', '2', '--groups', groups,
                            '--types', types, '--hold-out-types', 'dense,colour')
    assert code == 0, err
    val, train = ids_of(out / 'val_types.json'), ids_of(out / 'train_types.json')
    assert val == {i for i, t in TYPES.items() if t in ('dense', 'colour')}
    assert train == set(TYPES) - val
    for group in ({'img000', 'img001'}, {'img003', 'img004'}):
        assert group <= val or group <= train
    assert (out / 'val_fold0.json').exists()  # the folds are still written beside
    assert 'types val: 4 images' in stdout and '  dense: 2 images' in stdout
    again = tmp_path / 'again'
    run(capsys, prepare_dsb, src, again, '--folds', '2', '--groups', groups,
        '--types', types, '--hold-out-types', 'dense,colour')
    for name in ('train_types.json', 'val_types.json'):
        assert (out / name).read_bytes() == (again / name).read_bytes()


@pytest.mark.parametrize('edit, hold_out, message', [
    (None, 'dense,nope', "unknown type(s) ['nope']; the types are ['big', 'colour', 'dense', 'sparse']"),
    (('img001', 'sparse'), 'dense', 'mosaic group 1 has tiles of types'),
    (('img003', None), 'dense', 'no type for ImageId img003'),
    (None, 'big,colour,dense,sparse', 'leaves no training image'),
])
def test_bad_hold_out_refused_before_work(typed_set, tmp_path, capsys, edit, hold_out, message):
    src, types, groups = typed_set
    table = dict(TYPES)
    if edit:
        table[edit[0]] = edit[1]
    types.write_text('image_id,type\n' + ''.join(f'{i},{t}\n' for i, t in table.items() if t))
    out = tmp_path / 'out'
    code, _, err = run(capsys, prepare_dsb, src, out, '--folds', '2', '--groups', groups,
                       '--types', types, '--hold-out-types', hold_out)
    lines = [line for line in err.splitlines() if line.startswith('error')]
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f'error: {types}: ')
    assert message in lines[0], lines
    assert not out.exists()


def test_types_and_hold_out_go_together(typed_set, tmp_path):
    src, types, _ = typed_set
    with pytest.raises(SystemExit):
        prepare_dsb.main([src, str(tmp_path / 'out'), '--types', str(types)])


def test_image_types_table(synthetic_set, tmp_path, capsys):
    src, labels = synthetic_set
    prepared = tmp_path / 'prepared'
    assert run(capsys, prepare_dsb, src, prepared, '--folds', '2')[0] == 0
    groups = tmp_path / 'groups.csv'
    groups.write_text(GROUPS)
    table = tmp_path / 'types.csv'
    code, stdout, err = run(capsys, image_types, prepared / 'full.json', src, table,
                            '--groups', groups)
    assert code == 0, err
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == image_types.COLUMNS
    assert [r['image_id'] for r in rows] == sorted(labels)
    got = {r['image_id']: r['type'] for r in rows}
    assert set(got.values()) <= set(image_types.TYPES)
    assert got['img000'] == got['img001'] and got['img003'] == got['img004']
    assert got['img002'].startswith('colour') and not got['img003'].startswith('colour')
    assert all(int(r['nuclei']) == int(labels[r['image_id']].max()) for r in rows)
    again = tmp_path / 'again.csv'
    run(capsys, image_types, prepared / 'full.json', src, again, '--groups', groups)
    assert table.read_bytes() == again.read_bytes()
    # and prepare_dsb reads it
    code, _, err = run(capsys, prepare_dsb, src, tmp_path / 'split', '--folds', '2',
                       '--types', table, '--hold-out-types', got['img002'])
    assert code == 0, err


def test_image_types_bad_json(tmp_path, capsys):
    bad = tmp_path / 'full.json'
    bad.write_text('{"images": [')
    code, _, err = run(capsys, image_types, bad, tmp_path, tmp_path / 'types.csv')
    assert code == 2 and err.startswith(f'error: {bad}: cannot read'), err
    assert not (tmp_path / 'types.csv').exists()


@needs_dsb
def test_shipped_types_table_covers_dsb_and_keeps_mosaics():
    """The committed table: every stage-1 image typed, each mosaic in one type."""
    with open(osp.join(REPO, 'data_prep', 'image_types.csv')) as f:
        types = {r['image_id']: r['type'] for r in csv.DictReader(f)}
    with open(osp.join(DSB_ROOT, 'mosaic_groups.csv')) as f:
        groups = {r['img_id']: r['mosaic_idx'] for r in csv.DictReader(f)}
    assert len(types) == 563 and set(types) == set(groups)
    assert set(types.values()) == set(image_types.TYPES)
    per_group = {}
    for img_id, group in groups.items():
        per_group.setdefault(group, set()).add(types[img_id])
    assert all(len(t) == 1 for t in per_group.values())
