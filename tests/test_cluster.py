"""Prediction on a Dask cluster: the same files as in-process, tiles as tasks, failures."""
import glob
import os
import signal
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO
from custom_modules.inference.cluster import ClusterTileMap, ModelSpec, _larger
from custom_modules.inference.tile_join import serial_map
from custom_modules.inference.tiling import predict_tiled
from spots_model import SpotsModule, bright_spots

sys.path.insert(0, f'{REPO}/tools')
import predict  # noqa: E402

SAMPLE = sorted(glob.glob(f'{REPO}/data/sample/stage1_train/*/images/*.png'))


class Done:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class EagerClient:
    """A client that runs each task when it is submitted (no cluster)."""

    def __init__(self):
        self.crops = []

    def submit(self, fn, spec, crop, pure=False):
        self.crops.append(crop.shape)
        return Done(bright_spots(crop))


def test_cluster_tile_map_joins_as_the_serial_map():
    rng = np.random.default_rng(0)
    img = np.zeros((300, 410, 3), np.uint8)
    for cy, cx in rng.integers(5, (295, 405), size=(60, 2)):
        cv2.circle(img, (int(cx), int(cy)), 6, (255, 255, 255), -1)
    serial = predict_tiled(bright_spots, img, 128, 32, map_tiles=serial_map)
    client = EagerClient()
    clustered = predict_tiled(bright_spots, img, 128, 32,
                              map_tiles=ClusterTileMap(client, ModelSpec(), window=3))
    assert len(client.crops) > 4  # each tile was a task
    np.testing.assert_array_equal(serial.label_map, clustered.label_map)
    np.testing.assert_array_equal(serial.scores, clustered.scores)


def test_larger_images_are_those_the_tiled_model_cuts(tmp_path):
    from custom_modules.inference.tiling import NucleusTiledModel
    tiled = NucleusTiledModel(module=SpotsModule(), tile_size=256, overlap=64, align=64)
    for shape, cut in (((300, 300), True), ((200, 250), False), ((3, 1000), False)):
        cv2.imwrite(str(tmp_path / 'a.png'), np.zeros(shape, np.uint8))
        assert _larger(str(tmp_path / 'a.png'), 0, 0, tiled) is cut  # a thin strip is whole


def test_workers_and_scheduler_are_exclusive(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict.main(['x.png', '--out', str(tmp_path), '--workers', '2',
                      '--scheduler', 'tcp://127.0.0.1:1'])
    assert exit_info.value.code == 2 and 'not both' in capsys.readouterr().err


def files_of(folder):
    """``{relative path: bytes}`` of every file under ``folder``."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """Three sample images, a 200 x 160 one (one task at --tile 256: the larger ones are
    tiled), a 600 x 600 mosaic, and a corrupt one."""
    if len(SAMPLE) < 3:
        pytest.skip('the bundled sample (data/sample) is absent')
    folder = tmp_path_factory.mktemp('images')
    for path in SAMPLE[:3]:
        cv2.imwrite(str(folder / os.path.basename(path)), cv2.imread(path))
    cv2.imwrite(str(folder / 'small.png'), cv2.resize(cv2.imread(SAMPLE[1]), (200, 160)))
    tiles = [cv2.resize(cv2.imread(p), (300, 300)) for p in SAMPLE[:4]]
    big = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:4])])
    cv2.imwrite(str(folder / 'big.png'), big)
    (folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 20)
    return folder


def image_files_or_die(spec, path, page, out, settings, imagej_roi, geojson, slide=None):
    """``image_files_task``, but the worker that first gets small.png dies."""
    from custom_modules.inference.cluster import image_files_task
    marker = os.path.join(os.path.dirname(out), 'a-worker-died')
    if os.path.basename(path) == 'small.png' and not os.path.exists(marker):
        open(marker, 'w').close()
        os.kill(os.getpid(), signal.SIGKILL)
    return image_files_task(spec, path, page, out, settings, imagej_roi, geojson, slide)


@pytest.mark.slow
def test_two_workers_write_what_one_process_writes(images, tmp_path, capsys, monkeypatch):
    """Byte for byte, though one worker is killed in the middle of the run."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' count (Dask sets OMP_NUM_THREADS=1)
    try:
        common = [str(images), '--tile', '256', '--diameter', 'none', '--submission',
                  '--geojson']
        assert predict.main(common + ['--out', str(tmp_path / 'here')]) == 1  # broken.png
        monkeypatch.setattr('custom_modules.inference.cluster.image_files_task', image_files_or_die)
        assert predict.main(common + ['--out', str(tmp_path / 'cluster'), '--workers', '2']) == 1
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / 'a-worker-died').is_file()
    err = capsys.readouterr().err
    assert err.count('broken.png') == 4  # "failed: ..." and the closing list, per run
    here, cluster = files_of(tmp_path / 'here'), files_of(tmp_path / 'cluster')
    assert sorted(here) == sorted(cluster) and 'labels/big.png' in here
    different = [name for name in here if here[name] != cluster[name]]
    assert not different, different
