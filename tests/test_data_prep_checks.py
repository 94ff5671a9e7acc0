"""data_prep refuses bad outputs and inputs early, and writes all outputs or none."""
import os
import os.path as osp

import pytest

from test_data_prep import decoded, prepare, same_partition


def _truncate_an_image(src):
    """Break img003's PNG: a check that comes first must report its own error instead."""
    path = osp.join(src, 'img003', 'images', 'img003.png')
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])


def _refused_early(proc, culprit):
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr
    assert culprit in proc.stderr and 'truncated' not in proc.stderr, proc.stderr


def test_out_is_a_file_refused_before_reading(synthetic_set, tmp_path):
    src, _ = synthetic_set
    _truncate_an_image(src)
    out = tmp_path / 'out'
    out.write_text('precious')
    proc = prepare(src, out, '--folds', '2', check=False)
    _refused_early(proc, 'out: exists and is not a folder')
    assert out.read_text() == 'precious'
    under_file = out / 'sub'
    _refused_early(prepare(src, under_file, '--folds', '2', check=False),
                   'out: is a file, cannot make the output folder')


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write anywhere')
def test_out_not_writable_refused_before_reading(synthetic_set, tmp_path):
    src, _ = synthetic_set
    _truncate_an_image(src)
    ro = tmp_path / 'ro'
    ro.mkdir()
    ro.chmod(0o500)
    try:
        proc = prepare(src, ro / 'out', '--folds', '2', check=False)
        _refused_early(proc, 'ro: not writable, cannot make')
    finally:
        ro.chmod(0o700)
    assert not os.listdir(ro)


def test_missing_groups_file_refused_before_reading(synthetic_set, tmp_path):
    src, _ = synthetic_set
    _truncate_an_image(src)
    out = tmp_path / 'out'
    proc = prepare(src, out, '--folds', '2', '--groups', str(tmp_path / 'nope.csv'), check=False)
    _refused_early(proc, 'nope.csv: cannot read the groups CSV')
    assert not out.exists()


def test_header_only_csvs(synthetic_set, tmp_path):
    src, _ = synthetic_set
    groups = tmp_path / 'groups.csv'
    groups.write_text('img_id,mosaic_idx\n')
    proc = prepare(src, tmp_path / 'out', '--folds', '2', '--groups', str(groups), check=False)
    _refused_early(proc, 'groups.csv: CSV has no rows')
    labels = tmp_path / 'labels.csv'
    labels.write_text('ImageId,EncodedPixels\n')
    proc = prepare(labels, tmp_path / 'out', '--images', src, '--folds', '2', check=False)
    _refused_early(proc, 'labels.csv: CSV has no rows')
    assert not (tmp_path / 'out').exists()


def test_folder_in_the_way_of_an_output(synthetic_set, tmp_path):
    src, _ = synthetic_set
    out = tmp_path / 'out'
    (out / 'folds.csv').mkdir(parents=True)
    proc = prepare(src, out, '--folds', '2', check=False)
    assert proc.returncode == 2 and 'folds.csv: a folder is in the way' in proc.stderr, proc.stderr
    assert os.listdir(out) == ['folds.csv']


def test_write_failing_part_way_leaves_nothing(synthetic_set, tmp_path, monkeypatch, capsys):
    """The late failure itself, with the early checks switched off: all outputs or none."""
    import custom_modules.io.atomic as atomic
    from data_prep import prepare_dsb
    monkeypatch.setattr(atomic, 'check_can_write', lambda paths: None)
    monkeypatch.setattr(prepare_dsb, 'check_can_write', lambda paths: None)
    src, _ = synthetic_set
    out = tmp_path / 'out'
    (out / 'folds.csv').mkdir(parents=True)  # the last output renamed into place
    assert prepare_dsb.main([src, str(out), '--folds', '2', '--workers', '1']) == 2
    assert 'folds.csv' in capsys.readouterr().err
    assert os.listdir(out) == ['folds.csv']


def test_stray_files_and_hidden_folders_are_skipped(synthetic_set, tmp_path):
    src, labels = synthetic_set
    open(osp.join(src, 'img001', 'masks', 'Thumbs.db'), 'wb').write(b'\x00not an image')
    open(osp.join(src, 'img002', 'masks', 'notes.txt'), 'w').write('hello')
    os.makedirs(osp.join(src, '.ipynb_checkpoints', 'junk'))
    os.makedirs(osp.join(src, 'img000', 'masks', '.ipynb_checkpoints'))
    open(osp.join(src, '.DS_Store'), 'wb').write(b'\x00')
    out = tmp_path / 'out'
    proc = prepare(src, out, '--folds', '2')
    assert 'images: 8' in proc.stdout
    _, maps = decoded(out)
    assert all(same_partition(maps[i], label) for i, label in labels.items())
