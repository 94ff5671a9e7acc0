"""Synthetic DSB-style data for the tests (no real data needed)."""
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmdet.utils import register_all_modules

import custom_modules  # noqa: F401  (registers the project's modules)

register_all_modules(init_default_scope=True)  # mmdet scope, as the configs set it

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DSB_ROOT = osp.join(REPO, '..', 'shared', 'dsb2018')
needs_dsb = pytest.mark.skipif(
    not osp.isdir(osp.join(DSB_ROOT, 'stage1_train')),
    reason=f'real data absent: {osp.normpath(DSB_ROOT)}/stage1_train not found')


def random_label_map(rng, shape=(64, 80), num=6, radius=(4, 9)) -> np.ndarray:
    """Non-overlapping discs labelled 1..K (later discs do not cover earlier)."""
    label = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    k = 0
    for _ in range(num):
        cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        r = rng.integers(*radius)
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (label == 0)
        if disc.sum() >= 8:
            k += 1
            label[disc] = k
    return label


def render(label: np.ndarray, rng, colour=False, bright=False) -> np.ndarray:
    """An 8-bit BGRA image with nuclei bright on dark (or the reverse)."""
    base = np.where(label > 0, 200, 30).astype(np.float32) + rng.normal(0, 5, label.shape)
    if bright:
        base = 255 - base
    img = np.clip(base, 0, 255).astype(np.uint8)
    bgr = np.stack([img, img // 2 + 60, img], -1) if colour else np.stack([img] * 3, -1)
    return np.concatenate([bgr, np.full(label.shape + (1, ), 255, np.uint8)], -1)


def write_layout(root, label_maps, images=None, rng=None):
    """Write images/masks in the competition layout; return the ImageIds."""
    rng = rng or np.random.default_rng(0)
    ids = []
    for i, label in enumerate(label_maps):
        image_id = f'img{i:03d}'
        os.makedirs(osp.join(root, image_id, 'images'))
        os.makedirs(osp.join(root, image_id, 'masks'))
        img = images[i] if images is not None else render(label, rng, colour=i % 3 == 2)
        cv2.imwrite(osp.join(root, image_id, 'images', image_id + '.png'), img)
        for k in range(1, int(label.max()) + 1):
            cv2.imwrite(osp.join(root, image_id, 'masks', f'm{k:03d}.png'),
                        ((label == k) * 255).astype(np.uint8))
        ids.append(image_id)
    return ids


def run_tool(*args, check=True):
    """Run a repo script with the current interpreter; return the CompletedProcess."""
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}')
    return proc


@pytest.fixture
def synthetic_set(tmp_path):
    """Eight labelled images in the competition layout and their label maps."""
    rng = np.random.default_rng(1)
    labels = [random_label_map(rng, shape=(64 + 8 * (i % 2), 80)) for i in range(8)]
    src = tmp_path / 'stage1_train'
    ids = write_layout(str(src), labels, rng=rng)
    return str(src), dict(zip(ids, labels))
