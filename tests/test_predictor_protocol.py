"""One predictor protocol: every model and wrapper takes ``(img, out_shape, raw)``, so they nest
in any order (custom_modules/structures/predictor.py)."""
import inspect

import cv2
import numpy as np
import pytest
from mmdet.registry import MODELS
from mmengine.model import BaseModel
from scipy import ndimage

import custom_modules  # noqa: F401
from conftest import random_label_map, render
from custom_modules.inference.diameter import NucleusRescaledModel
from custom_modules.inference.ensemble import NucleusEnsemble
from custom_modules.inference.tiling import NucleusTiledModel
from custom_modules.inference.tta import NucleusTTAModel
from custom_modules.models.classical import ClassicalSegmenter
from custom_modules.models.detector import NucleusMaskRCNN
from custom_modules.models.unet import NucleusUNet
from custom_modules.structures.label_map import LabelMapPrediction
from custom_modules.structures.label_ops import label_map_iou
from custom_modules.structures.predictor import LabelMapPredictor

D4 = [dict(), dict(flip='horizontal'), dict(flip='vertical'), dict(rot90=1), dict(rot90=2),
      dict(rot90=3), dict(rot90=1, flip='horizontal'), dict(rot90=1, flip='vertical')]


@MODELS.register_module(force=True)
class ProtocolThresholdNet(BaseModel):
    """Connected components of bright pixels: equivariant to flips and rotations, local."""

    def predict_label_map(self, img, out_shape=None, raw=False):
        label_map, n = ndimage.label(img[..., 0] > 127)
        if out_shape is not None and tuple(out_shape) != label_map.shape:
            label_map = cv2.resize(label_map.astype(np.float32), tuple(out_shape)[::-1],
                                   interpolation=cv2.INTER_NEAREST).astype(np.int32)
            present = np.unique(label_map[label_map > 0])
            lut = np.zeros(n + 1, np.int32)
            lut[present] = np.arange(1, len(present) + 1)
            label_map, n = lut[label_map], len(present)
        return LabelMapPrediction(label_map.astype(np.int32), np.ones(n, np.float32),
                                  np.zeros(n, np.int64))

    def forward(self, *args, **kwargs):
        raise NotImplementedError


NET = dict(type='ProtocolThresholdNet')


def tta(module):
    return dict(type='NucleusTTAModel', module=module, views=D4)


def tiles(module):
    return dict(type='NucleusTiledModel', module=module, tile_size=96, overlap=32)


def ensemble(*modules):
    return dict(type='NucleusEnsemble', members=[dict(model=m) for m in modules], min_area=0)


@pytest.fixture(scope='module')
def image():
    rng = np.random.default_rng(5)
    truth = random_label_map(rng, shape=(300, 260), num=150, radius=(4, 12))
    img = render(truth, rng)[..., :3]
    return img, MODELS.build(NET).predict_label_map(img)


def assert_valid(pred: LabelMapPrediction, shape) -> None:
    """A label map of ``shape``: labels 1..K all present, one score and class each."""
    pred.check()
    assert pred.label_map.shape == tuple(shape)
    assert set(np.unique(pred.label_map)) - {0} == set(range(1, len(pred) + 1))


def assert_same_nuclei(a: LabelMapPrediction, b: LabelMapPrediction) -> None:
    """The same nuclei, pixel for pixel, whatever their numbering."""
    assert len(a) == len(b) > 50
    assert (label_map_iou(a.label_map, b.label_map).max(1) == 1.0).all()


def test_every_model_and_wrapper_has_the_one_signature():
    for cls in (NucleusMaskRCNN, NucleusUNet, ClassicalSegmenter, NucleusTTAModel,
                NucleusTiledModel, NucleusEnsemble, NucleusRescaledModel):
        params = list(inspect.signature(cls.predict_label_map).parameters)
        assert params == ['self', 'img', 'out_shape', 'raw'], cls.__name__
        assert issubclass(cls, LabelMapPredictor), cls.__name__


@pytest.mark.parametrize('cfg', [tiles(tta(NET)), tta(tiles(NET)),
                                 ensemble(tta(NET), tiles(NET)), tiles(ensemble(tta(NET), NET)),
                                 tta(ensemble(tiles(NET), tta(NET)))],
                         ids=['tiles_of_tta', 'tta_of_tiles', 'ensemble_of_tta_and_tiles',
                              'tiles_of_ensemble', 'tta_of_ensemble'])
def test_wrappers_nest_in_any_order(image, cfg):
    img, whole = image
    model = MODELS.build(cfg)
    pred = model.predict_label_map(img)
    assert_valid(pred, img.shape[:2])
    # components are local and equivariant: views, tiles and votes all give the whole image's
    assert_same_nuclei(pred, whole)
    assert_valid(model.predict_label_map(img, raw=True), img.shape[:2])
    bigger = (img.shape[0] * 2, img.shape[1] * 2)
    assert_valid(model.predict_label_map(img, out_shape=bigger), bigger)


def test_rescaling_and_classical_nest_too(image):
    img, whole = image
    model = MODELS.build(dict(type='NucleusRescaledModel', diameter=11.0,
                              module=tta(tiles(NET))))  # predicted at twice the size
    assert_valid(model.predict_label_map(img), img.shape[:2])
    classical = MODELS.build(tta(tiles(dict(type='ClassicalSegmenter', min_area=15))))
    pred = classical.predict_label_map(img)
    assert_valid(pred, img.shape[:2])
    assert len(pred) > 50
