"""tools/predict.py against careless and hostile inputs (issue 26).

Output paths and options refused before any model is built, unreadable links
reported, reruns redone when the settings changed, stale temporary files
removed, CSV cells that a spreadsheet would run escaped.
"""
import csv
import errno
import json
import os
import subprocess

import cv2
import numpy as np
import torch

from custom_modules.inference.inferencer import NucleusInferencer
from custom_modules.io import atomic
from test_predict import BrightSpots, predict, run, spots


class Counting(BrightSpots):
    """BrightSpots that counts the images it was asked to predict."""

    def __init__(self):
        self.calls = 0

    def predict_label_map(self, img):
        self.calls += 1
        return super().predict_label_map(img)


def two_images(folder):
    """Two small grey images with nuclei in ``folder``; their paths."""
    folder.mkdir(exist_ok=True)
    paths = [folder / 'a.png', folder / 'b.png']
    cv2.imwrite(str(paths[0]), spots((30, 30), [(10, 10)]))
    cv2.imwrite(str(paths[1]), spots((30, 40), [(10, 10), (20, 30)]))
    return paths


def refused_before_inference(capsys, argv, fragment):
    """Exit 2, one stderr line holding ``fragment``, no image predicted."""
    model = Counting()
    code = predict.main([str(a) for a in argv], inferencer=NucleusInferencer.from_predictor(model))
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
    assert model.calls == 0


# 1. every output path and option checked before the model is built

def test_empty_or_unwritable_out_refused_before_inference(tmp_path, capsys):
    images = two_images(tmp_path / 'in')
    refused_before_inference(capsys, [images[0], '--out', ''], '--out is empty')
    blocker = tmp_path / 'blocker'
    blocker.write_text('a file')
    refused_before_inference(capsys, [images[0], '--out', blocker / 'sub'], 'blocker: is a file')
    refused_before_inference(capsys, [images[0], '--out', '/proc/nucleiseg_out'],
                             '/proc: cannot write there')
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'labels').write_text('a file where a folder goes')
    refused_before_inference(capsys, [images[0], '--out', out], 'labels: exists and is not a folder')
    (out / 'labels').unlink()
    (out / 'submission.csv').mkdir()
    refused_before_inference(capsys, [images[0], '--out', out, '--submission'],
                             'submission.csv: a folder is in the way')
    assert os.listdir(out) == ['submission.csv'] and sorted(os.listdir(blocker.parent)) == [
        'blocker', 'in', 'out']


def test_bad_device_refused_before_the_model_is_built(tmp_path, capsys, monkeypatch):
    images = two_images(tmp_path / 'in')
    out = tmp_path / 'out'
    refused_before_inference(capsys, [images[0], '--out', out, '--device', 'banana'],
                             '--device banana: not a torch device')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    refused_before_inference(capsys, [images[0], '--out', out, '--device', 'cuda'],
                             '--device cuda: no CUDA GPU is available here')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    refused_before_inference(capsys, [images[0], '--out', out, '--device', 'cuda:1'],
                             'only 1 CUDA GPU (cuda:0..cuda:0)')
    # the shipped model is not even looked for: the device is refused first
    assert predict.main([str(images[0]), '--out', str(out), '--device', 'banana']) == 2
    assert not out.exists()


# 2. links that cannot be read are reported, the other images done

def test_link_loops_and_dangling_links_are_failures(tmp_path, capsys):
    folder = tmp_path / 'in'
    two_images(folder)
    os.symlink(folder / 'loop.png', folder / 'loop.png')
    os.symlink(tmp_path / 'gone.png', folder / 'dangling.tif')
    os.symlink(tmp_path / 'gone2.png', tmp_path / 'named.png')
    code, stdout, stderr = run(capsys, folder, tmp_path / 'named.png', '--out', tmp_path / 'out')
    assert code == 1 and '2 images done' in stdout and '3 failed' in stdout, stdout
    assert 'loop.png: a symbolic link loop' in stderr
    assert 'dangling.tif: a dangling symbolic link' in stderr and 'named.png: a dangling' in stderr
    assert sorted(os.listdir(tmp_path / 'out' / 'labels')) == ['a.png', 'b.png']


# 3. reruns: skipped only with the same settings

def test_rerun_with_other_settings_is_redone(tmp_path, capsys):
    images = two_images(tmp_path / 'in')
    out = tmp_path / 'out'
    code, stdout, _ = run(capsys, tmp_path / 'in', '--out', out)
    assert code == 0 and '2 images done, 0 skipped' in stdout
    settings = json.loads((out / 'run_settings' / 'a.json').read_text())
    assert settings['tta'] is False and settings['page'] == 0 and settings['tile'] is None
    code, stdout, _ = run(capsys, tmp_path / 'in', '--out', out)
    assert '0 images done, 2 skipped' in stdout
    code, stdout, _ = run(capsys, tmp_path / 'in', '--out', out, '--tta')
    assert '2 images done (2 redone: settings changed (tta)), 0 skipped' in stdout, stdout
    code, stdout, _ = run(capsys, images[0], '--out', out, '--tta', '--tile', '0')
    assert '1 images done (1 redone: settings changed (tile))' in stdout, stdout
    (out / 'run_settings' / 'b.json').unlink()  # outputs of an older version, or lost
    code, stdout, _ = run(capsys, tmp_path / 'in', '--out', out, '--tta', '--tile', '0')
    assert '1 images done (1 redone: no record of the settings), 1 skipped' in stdout, stdout
    code, stdout, _ = run(capsys, images[0], '--out', out, '--tta-views', 'full', '--tile', '0')
    assert '1 images done (1 redone: settings changed (tta))' in stdout, stdout
    assert json.loads((out / 'run_settings' / 'a.json').read_text())['tta'] == 'full'


def test_rerun_with_other_weights_is_redone(tmp_path, capsys, monkeypatch):
    images = two_images(tmp_path / 'in')
    weights, config = tmp_path / 'w.pth', tmp_path / 'c.py'
    weights.write_bytes(b'first weights')
    config.write_text('model = None\n')
    model = NucleusInferencer.from_predictor(BrightSpots())
    model.config_path, model.weights_path = str(config), str(weights)
    argv = [str(images[0]), '--out', str(tmp_path / 'out')]
    assert predict.main(argv, inferencer=model) == 0
    weights.write_bytes(b'other weights')
    assert predict.main(argv, inferencer=model) == 0
    assert 'settings changed (weights)' in capsys.readouterr().out
    os.rename(weights, tmp_path / 'moved.pth')  # the same weights elsewhere: still the same
    model.weights_path = str(tmp_path / 'moved.pth')
    assert predict.main(argv, inferencer=model) == 0
    assert '0 images done, 1 skipped' in capsys.readouterr().out


def test_disk_full_writing_the_run_files_is_one_line(tmp_path, capsys, monkeypatch):
    two_images(tmp_path / 'in')
    real = predict.write_all_or_nothing

    def full_disk(files):
        if any(path.endswith('/measurements.csv') for path in files):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(files)

    monkeypatch.setattr(predict, 'write_all_or_nothing', full_disk)
    code, _, stderr = run(capsys, tmp_path / 'in', '--out', tmp_path / 'out')
    assert code == 1 and 'No space left on device' in stderr and 'Traceback' not in stderr
    assert len([line for line in stderr.splitlines() if 'error' in line]) == 1, stderr
    assert not (tmp_path / 'out' / 'measurements.csv').exists()


# 4. stale temporary files of killed runs

def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path, capsys, monkeypatch):
    two_images(tmp_path / 'in')
    out = tmp_path / 'out'
    run(capsys, tmp_path / 'in', '--out', out)
    dead = subprocess.Popen(['true'])
    dead.wait()  # its PID no longer runs
    alive = subprocess.Popen(['sleep', '60'])
    try:
        stale = [out / 'labels' / f'a.png.{dead.pid}.tmp', out / f'measurements.csv.{dead.pid}.tmp']
        kept = [out / 'labels' / f'b.png.{alive.pid}.tmp', out / 'labels' / 'notes.tmp',
                out / 'labels' / f'c.png.{dead.pid}.tmp.bak']
        for path in stale + kept:
            path.write_text('half written')
        monkeypatch.setattr(atomic, '_SWEPT', set())  # a new run: a new process
        run(capsys, tmp_path / 'in', '--out', out, '--overwrite')
        assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    finally:
        alive.kill()
        alive.wait()


# 5. CSV cells that would start a formula

def test_formula_like_names_are_escaped_in_every_csv(tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / '=HYPERLINK(1).png'), spots((30, 30), [(10, 10)]))
    cv2.imwrite(str(folder / '@cmd.png'), spots((30, 30), [(10, 10), (20, 20)]))
    out = tmp_path / 'out'
    code, _, _ = run(capsys, folder, '--out', out, '--submission')
    assert code == 0
    for name in ('measurements.csv', 'submission.csv'):
        with open(out / name, newline='') as f:
            cells = [row[0] for row in csv.reader(f)][1:]
        assert set(cells) == {"'=HYPERLINK(1)", "'@cmd"}, (name, cells)
    with open(out / 'measurements' / '@cmd.csv', newline='') as f:
        assert {r['image'] for r in csv.DictReader(f)} == {"'@cmd"}
    assert np.array_equal(np.unique(cv2.imread(str(out / 'labels' / '@cmd.png'), -1)), [0, 1, 2])
