"""Bad input to the tools: one line naming the file and what is wrong, exit code 2, nothing written.

data_prep and export_rle have their own tests (test_data_prep*.py, test_export.py). The
tools run in-process (``call_tool``); the last test runs each as a command.
"""
import json
import os
import os.path as osp
import pickle
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from conftest import call_tool, load_tool, run_tool
from custom_modules.engine.hooks import NucleusOverlayHook

SMOKE = 'configs/dsb_mrcnn_smoke.py'


def refused(proc, *fragments) -> str:
    """Assert exit code 2, no traceback, and every fragment in stderr; return stderr."""
    err = proc.stderr
    assert proc.returncode == 2 and 'Traceback' not in err, f'{proc.returncode}\n{err[-3000:]}'
    for fragment in fragments:
        assert fragment in err, err[-3000:]
    return err


@pytest.fixture
def fake_data(tmp_path):
    """``--cfg-options`` pointing every dataloader at files that exist (never read)."""
    (tmp_path / 'ann.json').write_text('{}')
    return [f'{split}_dataloader.dataset.{key}={value}' for split in ('train', 'val', 'test')
            for key, value in (('ann_file', tmp_path / 'ann.json'),
                               ('data_prefix.img', f'{tmp_path}/'))]


# tools/train.py

def test_train_missing_config_and_misspelt_option(tmp_path):
    work = tmp_path / 'work'
    refused(call_tool('tools/train.py', 'configs/nope.py', '--work-dir', str(work), check=False),
            'configs/nope.py: no such config file')
    refused(call_tool('tools/train.py', SMOKE, '--work-dir', str(work), '--cfg-options',
                      'train_cfg.max_iter=3', check=False),
            "no key 'max_iter' in train_cfg; did you mean train_cfg.max_iters?")
    assert not work.exists()


def test_train_missing_data_file(tmp_path):
    work = tmp_path / 'work'
    missing = tmp_path / 'nope' / 'train_fold0.json'
    refused(call_tool('tools/train.py', SMOKE, '--work-dir', str(work), '--cfg-options',
                      f'train_dataloader.dataset.ann_file={missing}', check=False),
            f'train_dataloader.dataset.ann_file: no such file {missing}')
    assert not work.exists()


def test_train_resume_missing_or_truncated(tmp_path, fake_data):
    work = tmp_path / 'work'
    missing = tmp_path / 'iter_2.pth'
    refused(call_tool('tools/train.py', SMOKE, '--work-dir', str(work), '--resume', str(missing),
                      '--cfg-options', *fake_data, check=False),
            f'--resume {missing}: no such checkpoint file')
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, missing)
    with open(missing, 'r+b') as f:
        f.truncate(os.path.getsize(missing) // 2)
    refused(call_tool('tools/train.py', SMOKE, '--work-dir', str(work), '--resume', str(missing),
                      '--cfg-options', *fake_data, check=False),
            f'{missing}: not a loadable checkpoint (truncated?)')
    assert not work.exists()
    work.mkdir()  # --resume without a path: the work dir's last_checkpoint names a lost file
    (work / 'last_checkpoint').write_text(str(tmp_path / 'lost.pth'))
    refused(call_tool('tools/train.py', SMOKE, '--work-dir', str(work), '--resume',
                      '--cfg-options', *fake_data, check=False),
            f'last_checkpoint names {tmp_path / "lost.pth"}: no such checkpoint file')
    assert sorted(os.listdir(work)) == ['last_checkpoint']


def test_train_resume_checkpoint_of_another_model(tmp_path, fake_data):
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(3)},
                'meta': dict(epoch=0, iter=2)}, other)
    work = tmp_path / 'work'
    err = refused(call_tool('tools/train.py', SMOKE, '--work-dir', str(work), '--resume',
                            str(other), '--cfg-options', *fake_data, check=False),
                  f'--resume {other}: does not fit the model', 'missing', 'unexpected')
    assert 'backbone.conv1.weight' in err
    assert not work.exists()


def test_train_launcher_without_torchrun_or_gpu(tmp_path, fake_data, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip('the gloo set-up applies without a CUDA GPU')
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    for launcher, message in (('pytorch', 'not set; start the processes with `torchrun'),
                              ('slurm', '--launcher slurm needs a CUDA GPU')):
        refused(call_tool('tools/train.py', SMOKE, '--work-dir', str(tmp_path / 'work'),
                          '--launcher', launcher, '--cfg-options', *fake_data, check=False),
                message)
    assert not (tmp_path / 'work').exists()


# tools/test.py

def test_test_missing_config_data_or_unwritable_out(tmp_path, fake_data):
    ckpt = tmp_path / 'ckpt.pth'
    ckpt.write_bytes(b'never read')
    refused(call_tool('tools/test.py', 'configs/nope.py', str(ckpt), check=False),
            'configs/nope.py: no such config file')
    in_the_way = tmp_path / 'preds.pkl'
    in_the_way.mkdir()
    refused(call_tool('tools/test.py', SMOKE, str(ckpt), '--out', str(in_the_way),
                      '--cfg-options', *fake_data, check=False),
            f'--out {in_the_way}: a folder is in the way')
    refused(call_tool('tools/test.py', SMOKE, str(ckpt), '--work-dir', str(tmp_path / 'work'),
                      '--cfg-options', f'test_dataloader.dataset.ann_file={tmp_path}/none.json',
                      check=False),
            f'test_dataloader.dataset.ann_file: no such file {tmp_path}/none.json')
    refused(call_tool('tools/test.py', SMOKE, str(ckpt), '--work-dir', str(tmp_path / 'work'),
                      '--tta-views', 'fast', '--cfg-options', *fake_data, check=False),
            '--tta-views fast: configs/dsb_mrcnn_smoke.py has no view set tta_views_fast '
            '(it has: full)')
    assert not (tmp_path / 'work').exists()


# tools/classical_baseline.py

def _classical():
    return load_tool('tools/classical_baseline.py').main


def test_classical_baseline_bad_inputs(tmp_path, capsys):
    main = _classical()
    out = tmp_path / 'preds.pkl'
    bad_json = tmp_path / 'bad.json'
    bad_json.write_text('{"images": [')
    no_images = tmp_path / 'no_images.json'
    no_images.write_text('{"annotations": []}')
    lost_image = tmp_path / 'lost.json'
    lost_image.write_text(json.dumps({'images': [{'id': 1, 'file_name': 'lost.png'}]}))
    for argv, message in (
            ([str(tmp_path / 'none.json'), str(tmp_path)], 'none.json: cannot read'),
            ([str(bad_json), str(tmp_path)], 'bad.json: not JSON'),
            ([str(no_images), str(tmp_path)], 'no_images.json: not a COCO JSON'),
            ([str(lost_image), str(tmp_path / 'nope')], 'nope: no such image folder'),
            ([str(lost_image), str(tmp_path)], f'lost.png: cannot read (No such file or '
                                               f'directory) (listed in {lost_image})')):
        assert main(argv + ['--out', str(out)]) == 2
        assert message in capsys.readouterr().err
    out.mkdir()  # a folder in the way: refused before any image is read
    assert main([str(lost_image), str(tmp_path), '--out', str(out)]) == 2
    assert 'a folder is in the way' in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ['bad.json', 'lost.json', 'no_images.json',
                                            'preds.pkl']


def test_classical_baseline_writes_its_pickle_whole(tmp_path, synthetic_set, capsys):
    src, _ = synthetic_set
    ann = tmp_path / 'images.json'
    ann.write_text(json.dumps({'images': [{'id': 1, 'file_name': 'img000/images/img000.png'}]}))
    out = tmp_path / 'out' / 'preds.pkl'
    assert _classical()([str(ann), src, '--out', str(out)]) == 0
    assert os.listdir(out.parent) == ['preds.pkl']
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 1 and preds[0]['img_id'] == 1


# custom_modules/engine/hooks.py: overlays are written whole

def test_overlay_hook_writes_whole_pngs(tmp_path, synthetic_set):
    src, labels = synthetic_set
    label = labels['img000']
    sample = SimpleNamespace(img_path=osp.join(src, 'img000', 'images', 'img000.png'),
                             ori_shape=label.shape, pred_label_map=label,
                             pred_instances=dict(scores=np.ones(int(label.max())),
                                                 labels=np.zeros(int(label.max()), int)))
    runner = SimpleNamespace(work_dir=str(tmp_path), test_dataloader=SimpleNamespace(
        dataset=SimpleNamespace(metainfo=dict(has_annotations=False))))
    hook = NucleusOverlayHook('overlays')
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, outputs=[sample])
    assert os.listdir(tmp_path / 'overlays') == ['img000.png']
    assert cv2.imread(str(tmp_path / 'overlays' / 'img000.png')).shape == label.shape + (3, )
    os.remove(tmp_path / 'overlays' / 'img000.png')
    os.mkdir(tmp_path / 'overlays' / 'img000.png')
    with pytest.raises(OSError, match='a folder is in the way'):
        hook.after_test_iter(runner, 0, outputs=[sample])
    assert os.listdir(tmp_path / 'overlays') == ['img000.png']


# bench scripts

def test_bench_scripts_bad_arguments(tmp_path):
    refused(call_tool('bench/bench_train.py', 'configs/nope.py', check=False),
            'configs/nope.py: no such config file')
    refused(call_tool('bench/bench_train.py', SMOKE, '--iters', '3', '--skip', '2', check=False),
            '--iters must exceed --skip + 1')
    refused(call_tool('bench/bench_train.py', SMOKE, '--load-from', str(tmp_path / 'no.pth'),
                      check=False), 'no.pth: no such checkpoint file')
    refused(call_tool('bench/profile_train.py', SMOKE, '--load-from', str(tmp_path / 'no.pth'),
                      check=False), 'no.pth: no such checkpoint file')
    refused(call_tool('bench/bench_train_variants.py', 'configs/nope.py', check=False),
            'configs/nope.py: no such config file')
    refused(call_tool('bench/bench_train_variants.py', SMOKE, '--steps', '3', '--skip', '2',
                      check=False), '--steps must exceed --skip + 1')
    refused(call_tool('bench/bench_tta_merge.py', SMOKE, 'none.pth', '--every', '0',
                      check=False), '--every >= 1')
    refused(call_tool('bench/bench_tta_merge.py', SMOKE, 'none.pth', '--subsets', '0,0',
                      check=False), 'need distinct view indices')
    refused(call_tool('bench/profile_inference.py', '--sizes', '640', check=False),
            "'640': expected WIDTHxHEIGHT")
    for flag in ('--reps', '--rounds'):
        refused(call_tool('bench/profile_inference.py', flag, '0', check=False),
                '--reps and --rounds must be at least 1')
    refused(call_tool('bench/profile_inference.py', '--data',
                      str(tmp_path), '--sizes', '64x64', check=False), 'no DSB2018 images')
    refused(call_tool('bench/bench_rle.py', '--images', '0', check=False),
            '--images and --loop-masks must be at least 1')
    refused(call_tool('bench/bench_metric.py', '--images', '0', check=False),
            '--images must be at least 1')
    refused(call_tool('bench/bench_tile_locality.py', str(tmp_path / 'none.png'), check=False),
            'none.png: cannot read')
    refused(call_tool('bench/bench_tile_locality.py', str(tmp_path / 'none.png'), '--at', '3',
                      check=False), '--at takes corners as Y,X')
    out = tmp_path / 'out'
    refused(call_tool('bench/bench_data_prep.py', str(tmp_path / 'none'), str(out), check=False),
            'none: cannot list folder')
    assert not out.exists()


# each tool as a command: `sys.exit(main())` passes the code on, the error is one line

COMMANDS = {  # a refusal each: the arguments (T: the test's folder) and the message
    'tools/train.py': (['configs/nope.py'], 'configs/nope.py: no such config file'),
    'tools/test.py': (['configs/nope.py', 'T/bad.pkl'], 'configs/nope.py: no such config file'),
    'tools/tune_thresholds.py': (['configs/nope.py', 'T/bad.pkl'], 'no such config file'),
    'tools/predict.py': (['T/none.png', '--out', 'T/out'], 'none.png: no such file'),
    'tools/export_rle.py': (['T/bad.pkl', '--out', 'T/sub.csv'], 'bad.pkl: cannot read'),
    'tools/classical_baseline.py': (['T/none.json', 'T', '--out', 'T/p.pkl'],
                                    'none.json: cannot read'),
    'tools/convert_mobilenetv2.py': (['T/bad.pkl', 'T/out.pth'], 'bad.pkl: not a state dict'),
    'tools/publish_model.py': (['T/none.pth', SMOKE, 'T/out'], 'none.pth'),
    'tools/score_labels.py': (['T/empty', 'T'], 'empty: no label images'),
    'data_prep/prepare_dsb.py': (['T/none', 'T/out'], 'none: cannot list folder'),
    'data_prep/image_types.py': (['T/none.json', 'T/none', 'T/out.csv'], 'none.json'),
}


@pytest.mark.slow
@pytest.mark.parametrize('tool', list(COMMANDS))
def test_each_tool_refuses_bad_input_as_a_command(tool, tmp_path):
    (tmp_path / 'bad.pkl').write_bytes(b'garbage')
    (tmp_path / 'empty').mkdir()
    args, message = COMMANDS[tool]
    args = [str(tmp_path) + a[1:] if a == 'T' or a.startswith('T/') else a for a in args]
    err = refused(run_tool(tool, *args, check=False), message)
    assert len([line for line in err.splitlines() if 'error' in line]) == 1, err
    assert sorted(os.listdir(tmp_path)) == ['bad.pkl', 'empty']
