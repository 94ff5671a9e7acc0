"""All outputs or none: custom_modules.io.atomic."""
import os

import pytest

import custom_modules.io.atomic as atomic
from custom_modules.io.atomic import check_can_write, write_all_or_nothing, write_atomic


def test_writes_every_file_and_makes_folders(tmp_path):
    a, b = tmp_path / 'a.json', tmp_path / 'new' / 'deeper' / 'b.bin'
    a.write_text('old')
    assert write_all_or_nothing({str(a): '{}', str(b): b'\x00\x01'}) == [str(a), str(b)]
    assert a.read_text() == '{}' and b.read_bytes() == b'\x00\x01'
    write_atomic(str(a), 'again')
    assert a.read_text() == 'again'
    assert sorted(os.listdir(tmp_path)) == ['a.json', 'new']


def test_folder_in_the_way_writes_nothing(tmp_path):
    out = tmp_path / 'out'
    (out / 'folds.csv').mkdir(parents=True)
    with pytest.raises(OSError, match='folds.csv: a folder is in the way'):
        write_all_or_nothing({str(out / 'full.json'): '{}', str(out / 'folds.csv'): 'x'})
    assert os.listdir(out) == ['folds.csv']


def test_failed_rename_removes_new_files_temps_and_folders(tmp_path, monkeypatch):
    """A rename failing part-way (after the checks) leaves no new file, no .tmp, no folder."""
    out = tmp_path / 'out'
    real_replace, calls = os.replace, []

    def flaky_replace(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise IsADirectoryError(21, 'Is a directory', dst)
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, 'replace', flaky_replace)
    paths = {str(out / f'{n}.json'): n for n in 'abcd'}
    with pytest.raises(IsADirectoryError):
        write_all_or_nothing(paths)
    monkeypatch.undo()
    assert len(calls) == 3 and not out.exists()


def test_failed_write_keeps_existing_files(tmp_path):
    keep = tmp_path / 'keep.csv'
    keep.write_text('old')
    with pytest.raises(TypeError):
        write_all_or_nothing({str(keep): 'new', str(tmp_path / 'x.json'): 42})
    assert keep.read_text() == 'old' and os.listdir(tmp_path) == ['keep.csv']


def test_check_can_write_names_the_obstacle(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(OSError, match='file: exists and is not a folder'):
        check_can_write([str(blocker / 'full.json')])
    with pytest.raises(OSError, match='file: is a file, cannot make the output folder'):
        check_can_write([str(blocker / 'sub' / 'full.json')])
    check_can_write([str(tmp_path / 'new' / 'full.json')])
    assert os.listdir(tmp_path) == ['file']


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write anywhere')
def test_check_can_write_read_only_folder(tmp_path):
    ro = tmp_path / 'ro'
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OSError, match='ro: output folder is not writable'):
            check_can_write([str(ro / 'full.json')])
    finally:
        ro.chmod(0o700)
