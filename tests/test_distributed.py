"""Two processes (torchrun, gloo on the CPU) train and test like one.

``tools/train.py`` / ``tools/test.py --launcher pytorch`` without a GPU: the
ranks must end with the same weights, and a two-process test must give the
predictions and score of a one-process test.
"""
import os
import pickle
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO

# Each rank saves its own network's state after training, and its parameters' names.
HOOK = """import torch
from mmdet.registry import HOOKS
from mmengine.dist import get_rank
from mmengine.hooks import Hook


@HOOKS.register_module()
class RankDumpHook(Hook):
    def after_train(self, runner):
        net = runner.model.module
        torch.save(dict(state=net.state_dict(), params=[n for n, _ in net.named_parameters()]),
                   f'{runner.work_dir}/rank{get_rank()}.pth')
"""
CONFIG = """_base_ = '{repo}/configs/dsb_mrcnn_smoke.py'
custom_imports = dict(imports=['custom_modules', 'rank_dump'], allow_failed_imports=False)
custom_hooks = [dict(type='RankDumpHook')]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run(args, nproc: int, hook_dir) -> str:
    """Run a tool in ``nproc`` processes (torchrun when > 1), one thread each; return its log."""
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([str(hook_dir), os.environ.get('PYTHONPATH', '')]))
    cmd = [sys.executable] + args
    if nproc > 1:
        cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
               f'--master_port={free_port()}'] + args + ['--launcher', 'pytorch']
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{cmd} failed ({proc.returncode}):\n{log[-5000:]}'
    return log


def score_line(log: str) -> str:
    """The test's metrics line, timing fields removed."""
    found = re.findall(r'Iter\(test\) \[\d+/\d+\]\s+(dsb/score: .*?)\s+data_time', log)
    assert found, log[-3000:]
    return found[-1]


@pytest.mark.slow
def test_two_processes_train_alike_and_test_like_one(tmp_path, prepared_set):
    src, ann = prepared_set.src, prepared_set.ann
    (tmp_path / 'rank_dump.py').write_text(HOOK)
    cfg = tmp_path / 'smoke_ranks.py'
    cfg.write_text(CONFIG.format(repo=REPO))
    data = [f'{split}_dataloader.dataset.{key}' for split in ('train', 'val', 'test')
            for key in ('ann_file', 'data_prefix.img')]
    values = [f'{ann}/train_fold0.json', f'{src}/'] + [f'{ann}/val_fold0.json', f'{src}/'] * 2
    data = [f'{k}={v}' for k, v in zip(data, values)]
    work = tmp_path / 'work'

    log = run(['tools/train.py', str(cfg), '--work-dir', str(work), '--cfg-options',
               'train_cfg.max_iters=2', 'train_cfg.val_interval=2', *data], 2, tmp_path)
    assert 'distributed over the gloo backend on the CPU, 2 processes' in log
    ranks = [torch.load(work / f'rank{r}.pth', weights_only=False) for r in (0, 1)]
    saved = torch.load(work / 'iter_2.pth', weights_only=False)['state_dict']
    params = ranks[0]['params']
    assert params and all(torch.equal(ranks[0]['state'][k], ranks[1]['state'][k]) for k in params)
    assert all(torch.equal(ranks[0]['state'][k], saved[k]) for k in ranks[0]['state'])
    # Buffers are per rank (mmengine's DDP: broadcast_buffers=False): only the BN
    # running statistics of the smoke config's trainable BN layers may differ.
    differ = {k for k in ranks[0]['state'] if not torch.equal(ranks[0]['state'][k],
                                                              ranks[1]['state'][k])}
    assert all(k.endswith(('.running_mean', '.running_var')) for k in differ), differ

    results = []
    for nproc in (1, 2):
        out = tmp_path / f'preds{nproc}.pkl'
        log = run(['tools/test.py', str(cfg), str(work / 'iter_2.pth'), '--work-dir',
                   str(tmp_path / f'test{nproc}'), '--out', str(out), '--cfg-options', *data],
                  nproc, tmp_path)
        with open(out, 'rb') as f:
            results.append((score_line(log), pickle.load(f)))
    (score_one, one), (score_two, two) = results
    assert score_one == score_two
    assert [p['img_path'] for p in one] == [p['img_path'] for p in two] and len(one) == 4
    assert any(len(p['pred_instances']['scores']) for p in one)  # something to compare
    for a, b in zip(one, two):
        assert np.array_equal(a['pred_label_map'], b['pred_label_map'])
        assert torch.equal(a['pred_instances']['scores'], b['pred_instances']['scores'])


@pytest.mark.parametrize('rank_env', [False, True])
def test_exit_process_keeps_code_and_output(rank_env):
    """A torchrun rank ends by os._exit (no teardown) with its code and its output flushed."""
    code = ('import sys; from custom_modules.engine.distributed import exit_process\n'
            'print("written", end=""); sys.stderr.write("said")\nexit_process(3)\n')
    env = {k: v for k, v in os.environ.items() if k != 'TORCHELASTIC_RUN_ID'}
    if rank_env:
        env['TORCHELASTIC_RUN_ID'] = 'test'
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert (proc.returncode, proc.stdout, proc.stderr.endswith('said')) == (3, 'written', True)
