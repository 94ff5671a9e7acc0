"""Appearance augmentations (custom_modules/data/appearance.py): image only, in range, seeded."""
import os.path as osp

import numpy as np
import pytest
from mmcv.transforms import Compose
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks

from conftest import REPO, random_label_map, render
from custom_modules.data import appearance
from custom_modules.inference.model_zoo import load_config

NAMES = ('RandomHEDJitter', 'RandomHSVJitter', 'RandomGreyColour', 'RandomInvert',
         'RandomGammaContrast', 'RandomDefocus', 'RandomPoissonGaussianNoise', 'RandomJPEG',
         'RandomDownUp')


def sample(colour: bool, dtype=np.uint8, bright: bool = False) -> dict:
    """A results dict: a rendered 64x80 image, its masks and boxes."""
    rng = np.random.default_rng(5)
    label = random_label_map(rng)
    img = render(label, rng, colour=colour, bright=bright)[:, :, :3].astype(dtype)
    masks = np.stack([label == k for k in range(1, label.max() + 1)]).astype(np.uint8)
    boxes = np.array([[0, 0, 10, 10]] * len(masks), np.float32)
    return dict(img=img, gt_masks=BitmapMasks(masks, 64, 80), gt_bboxes=HorizontalBoxes(boxes))


def build(name, prob):
    return TRANSFORMS.build(dict(type=name, prob=prob))


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('colour', [False, True], ids=['grey', 'colour'])
def test_image_changes_alone_in_range(name, colour):
    before = sample(colour)
    masks, boxes = before['gt_masks'].masks.copy(), before['gt_bboxes'].tensor.clone()
    img = before['img'].copy()
    np.random.seed(0)
    out = build(name, 1.0)(dict(before))
    assert out['img'].shape == img.shape and out['img'].dtype == np.uint8
    assert out['img'].flags['C_CONTIGUOUS']
    assert np.array_equal(out['gt_masks'].masks, masks) and (out['gt_bboxes'].tensor == boxes).all()
    skipped = name == 'RandomHEDJitter' and not colour  # grey images are left alone
    assert np.array_equal(out['img'], img) == skipped, name
    np.random.seed(0)
    again = build(name, 1.0)(sample(colour))
    assert np.array_equal(out['img'], again['img'])  # the same seed, the same result


@pytest.mark.parametrize('name', NAMES)
def test_prob_zero_is_identity(name):
    results = sample(True)
    img = results['img']
    out = build(name, 0.0)(results)
    assert out['img'] is img


@pytest.mark.parametrize('name', NAMES)
def test_float_images_clipped_to_byte_range(name):
    results = sample(True, np.float32, bright=True)
    results['img'][:4] = 255.0  # saturated rows: the noise and contrast push past 255
    np.random.seed(1)
    out = build(name, 1.0)(results)
    assert out['img'].dtype == np.float32
    assert out['img'].min() >= 0 and out['img'].max() <= 255
    assert np.array_equal(out['img'], np.rint(out['img']))


def test_down_up_enlarges_back_as_asked():
    """Lanczos (what ``--diameter auto`` enlarges with) and linear give different images
    from the same shrunk one: the same draw, only the enlargement differs."""
    images = {}
    for interpolation in ('linear', 'lanczos'):
        np.random.seed(3)
        step = TRANSFORMS.build(dict(type='RandomDownUp', scale_range=(0.4, 0.4), prob=1.0,
                                     interpolation=interpolation))
        images[interpolation] = step(sample(False))['img']
    assert images['linear'].shape == images['lanczos'].shape == (64, 80, 3)
    assert not np.array_equal(images['linear'], images['lanczos'])
    assert appearance.is_grey(images['lanczos'])


def test_grey_stays_grey_and_colour_becomes_grey():
    np.random.seed(0)
    noisy = build('RandomPoissonGaussianNoise', 1.0)(sample(False))['img']
    assert appearance.is_grey(noisy)
    grey = build('RandomGreyColour', 1.0)(sample(True))['img']
    assert appearance.is_grey(grey)
    tinted = build('RandomGreyColour', 1.0)(sample(False, bright=True))['img']
    assert not appearance.is_grey(tinted)


@pytest.mark.parametrize('cfg, message', [
    (dict(type='RandomGammaContrast', gamma_range=(2.0, 1.0)), 'gamma_range'),
    (dict(type='RandomJPEG', quality_range=(50, 120)), 'quality_range'),
    (dict(type='RandomDownUp', scale_range=(0.5, 2.0)), 'scale_range'),
    (dict(type='RandomDownUp', interpolation='nearest'), 'interpolation'),
    (dict(type='RandomInvert', prob=1.5), 'prob'),
    (dict(type='NucleusInputMode', mode='grey'), 'grey'),
])
def test_bad_arguments_refused(cfg, message):
    with pytest.raises(ValueError, match=message):
        TRANSFORMS.build(cfg)


def test_appearance_config_pipeline_runs():
    cfg = load_config(osp.join(REPO, 'configs', 'dsb_unet_cpu_appearance.py'))
    pipeline = cfg.train_dataloader.dataset.pipeline
    types = [t['type'] for t in pipeline]
    assert set(NAMES) <= set(types) and types.index('NucleusInputMode') > types.index('RandomJPEG')
    steps = Compose(pipeline[4:pipeline.index(next(t for t in pipeline
                                                    if t['type'] == 'RandomFlip'))])
    np.random.seed(2)
    out = steps(sample(True))
    assert out['img'].dtype == np.uint8 and appearance.is_grey(out['img'])  # grey_dark at the end
