"""The solution's augmentations: invariants after any chain, determinism."""
import numpy as np
import pytest
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmengine.dataset import Compose

import custom_modules  # noqa: F401
from conftest import random_label_map, render
from custom_modules.structures.label_ops import masks_to_boxes

CHAIN = [
    dict(type='RandomZoom', scale_range=(0.5, 2.0), aspect_range=(0.75, 1.33), pre_crop=(48, 48)),
    dict(type='InstanceSafeRandomCrop', crop_size=(48, 48), min_area=4, max_instances=5),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRot90', prob=0.75),
    dict(type='RandomFreeRotate', max_angle=45.0, prob=0.5),
    dict(type='RandomChannelShift', max_shift=20.0, prob=0.5),
]


def make_results(seed=0, shape=(70, 90)):
    rng = np.random.default_rng(seed)
    label = random_label_map(rng, shape=shape, num=12)
    n = int(label.max())
    masks = np.stack([label == k for k in range(1, n + 1)]).astype(np.uint8)
    return dict(img=render(label, rng, colour=True)[:, :, :3], img_shape=shape, ori_shape=shape,
                gt_masks=BitmapMasks(masks, *shape),
                gt_bboxes=HorizontalBoxes(masks_to_boxes(masks.astype(bool))),
                gt_bboxes_labels=np.zeros(n, np.int64), gt_ignore_flags=np.zeros(n, bool))


def check_invariants(r):
    masks = r['gt_masks'].masks
    assert set(np.unique(masks).tolist()) <= {0, 1}, 'masks not binary'
    assert masks.shape[1:] == r['img'].shape[:2] == tuple(r['img_shape'])
    assert masks.sum(axis=(1, 2)).min(initial=1) > 0, 'empty instance'
    np.testing.assert_array_equal(r['gt_bboxes'].numpy(), masks_to_boxes(masks.astype(bool)))
    assert len(r['gt_bboxes_labels']) == len(r['gt_ignore_flags']) == len(masks)


@pytest.mark.parametrize('seed', range(40))
def test_chain_invariants(seed):
    np.random.seed(seed)
    r = Compose(CHAIN)(make_results(seed))
    check_invariants(r)
    assert r['img'].shape[0] <= 48 and r['img'].shape[1] <= 48
    assert len(r['gt_masks']) <= 5


@pytest.mark.parametrize('cfg', CHAIN, ids=lambda c: c['type'])
def test_each_transform_alone(cfg):
    transform = TRANSFORMS.build(dict(cfg, prob=1.0) if 'prob' in cfg else cfg)
    for seed in range(10):
        np.random.seed(seed)
        check_invariants(transform(make_results(seed)))


def test_fixed_seed_same_result():
    outs = []
    for _ in range(2):
        np.random.seed(123)
        outs.append(Compose(CHAIN)(make_results(5)))
    assert np.array_equal(outs[0]['img'], outs[1]['img'])
    assert np.array_equal(outs[0]['gt_masks'].masks, outs[1]['gt_masks'].masks)


def test_crop_keeps_visible_part_of_cut_nuclei():
    r = make_results(2)
    r['gt_masks'] = BitmapMasks(np.zeros((1, 70, 90), np.uint8), 70, 90)
    r['gt_masks'].masks[0, 10:30, 10:30] = 1
    for key in ('gt_bboxes_labels', 'gt_ignore_flags'):
        r[key] = r[key][:1]
    r['gt_bboxes'] = HorizontalBoxes(np.array([[10, 10, 30, 30]], np.float32))
    from custom_modules.data.transforms import crop_results
    out = crop_results(r, 20, 20, 40, 40, min_area=4)
    assert out['gt_masks'].masks[0].sum() == 100  # the 10x10 visible corner
    assert out['gt_bboxes'].numpy().tolist() == [[0, 0, 10, 10]]
    out = crop_results(make_results(2), 0, 0, 70, 90, min_area=10 ** 6)
    assert len(out['gt_masks']) == 0  # fragments below min_area dropped


def test_rot90_is_exact():
    np.random.seed(0)
    r = make_results(3)
    before = r['gt_masks'].masks.copy()
    out = TRANSFORMS.build(dict(type='RandomRot90', prob=1.0))(r)
    k = next(k for k in (1, 2, 3) if np.array_equal(np.rot90(before, k, axes=(1, 2)),
                                                    out['gt_masks'].masks))
    assert k in (1, 2, 3)


def sparse_results(size=1500):
    """A large dark field with three small nuclei in its top-left corner."""
    label = np.zeros((size, size), np.int32)
    yy, xx = np.mgrid[:size, :size]
    for k, (cy, cx) in enumerate([(30, 30), (60, 90), (110, 40)], start=1):
        label[(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = k
    masks = np.stack([label == k for k in (1, 2, 3)]).astype(np.uint8)
    img = np.where(label > 0, 200, 30).astype(np.uint8)
    return dict(img=np.stack([img] * 3, -1), img_shape=label.shape, ori_shape=label.shape,
                gt_masks=BitmapMasks(masks, size, size),
                gt_bboxes=HorizontalBoxes(masks_to_boxes(masks.astype(bool))),
                gt_bboxes_labels=np.zeros(3, np.int64), gt_ignore_flags=np.zeros(3, bool))


def test_sparse_large_image_gives_crops_with_nuclei():
    zoom_crop = Compose([
        dict(type='RandomZoom', scale_range=(0.6, 1.6), aspect_range=(0.8, 1.25),
             pre_crop=(256, 256)),
        dict(type='InstanceSafeRandomCrop', crop_size=(256, 256), min_area=4)])
    crop = TRANSFORMS.build(dict(type='InstanceSafeRandomCrop', crop_size=(256, 256), min_area=4))
    empty = {'zoom+crop': 0, 'crop': 0}
    draws = 30
    for seed in range(draws):
        np.random.seed(seed)
        r = zoom_crop(sparse_results())
        check_invariants(r)
        assert r['img'].shape[:2] == (256, 256)
        empty['zoom+crop'] += len(r['gt_masks']) == 0
        empty['crop'] += len(crop(sparse_results())['gt_masks']) == 0
    assert empty['zoom+crop'] <= draws // 10 and empty['crop'] <= draws // 10, empty
