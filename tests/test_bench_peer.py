"""bench/bench_peer.py: argument checks and the ours-only path on one tiny image.

No timing is asserted (speed is what the benchmark prints). The Cellpose 3 path runs
only where bench/peer_env.sh has made its folder; Cellpose-SAM is never run here
(one ViT-L tile takes minutes on 2 cores).
"""
import os.path as osp

import numpy as np
import pytest

from conftest import REPO, load_tool

PEER_ENV = osp.join(REPO, 'work_dirs', 'peer_env')


def load(name):
    return load_tool(f'bench/{name}.py')


@pytest.fixture(scope='module')
def bench():
    return load('bench_peer')


@pytest.mark.parametrize('argv, fragment', [
    (['--sizes', '12x12'], '--sizes 12x12: each side must be 16-8000 px'),
    (['--sizes', '256'], '--sizes 256: not HEIGHTxWIDTH'),
    (['--reps', '0'], '--reps and --threads must be at least 1'),
    (['--images', '/nonexistent/dir'], '--images /nonexistent/dir: no such folder'),
])
def test_bad_arguments(bench, capsys, argv, fragment):
    assert bench.main(['--tools', 'ours'] + argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_missing_peer_env(bench, capsys, tmp_path):
    assert bench.main(['--tools', 'ours', 'cp3', '--peer-env', str(tmp_path)]) == 2
    assert f'{tmp_path}/cp3: no Cellpose 3.x nuclei environment' in capsys.readouterr().err


def test_synthetic_and_tiling(bench):
    img, labels = bench.synthetic((40, 50))
    assert img.shape == (40, 50, 3) and img.dtype == np.uint8 and labels.max() >= 1
    tiled = bench.tile_to(labels, (90, 120), labels=True)
    assert tiled.shape == (90, 120)
    assert len(np.unique(tiled)) - 1 > len(np.unique(labels)) - 1  # distinct per copy


@pytest.mark.slow
def test_ours_only(bench, capsys):
    assert bench.main(['--tools', 'ours', '--sizes', '64x80', '--images', 'synthetic']) == 0
    out = capsys.readouterr().out
    assert 'ours (Mask R-CNN)' in out and '64x80: synthetic discs' in out


@pytest.mark.skipif(not osp.isfile(osp.join(PEER_ENV, 'cp3', 'PEER_ENV')),
                    reason='no Cellpose 3 environment: work_dirs/peer_env/cp3 is made by '
                    'bash bench/peer_env.sh (it needs the package registry)')
def test_ours_and_cellpose3(bench, capsys):
    assert bench.main(['--tools', 'ours', 'cp3', '--sizes', '64x80', '--images', 'synthetic',
                       '--peer-env', PEER_ENV]) == 0
    out = capsys.readouterr().out
    assert 'Cellpose 3.x nuclei' in out and 'cellpose 3.1.1.3' in out
