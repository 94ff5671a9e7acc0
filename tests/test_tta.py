"""TTA and tiling over label maps, with predictors whose answers are known by construction."""
import hashlib

import cv2
import numpy as np
import pytest
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.model import BaseModel
from scipy import ndimage

import custom_modules  # noqa: F401
from conftest import REPO, random_label_map, render
from custom_modules.evaluation.metric import score_label_maps
from custom_modules.inference.tta import check_view, forward_geometry
from custom_modules.structures.label_map import LabelMapPrediction

D4_VIEWS = [check_view(v) for v in [dict(), dict(flip="horizontal"), dict(flip="vertical"), dict(rot90=1),
            dict(rot90=2), dict(rot90=3), dict(rot90=1, flip='horizontal'),
            dict(rot90=1, flip="vertical")]]


@pytest.fixture(scope='module')
def r101_views():
    """The R101 recipe's 15 test-time views (read when a test needs them, not at import)."""
    return Config.fromfile(f"{REPO}/configs/dsb_mrcnn_r101.py").tta_model.views


def at_shape(label_map, out_shape):
    if out_shape is None or tuple(out_shape) == label_map.shape:
        return label_map
    return cv2.resize(label_map.astype(np.float32), tuple(out_shape)[::-1],
                      interpolation=cv2.INTER_NEAREST).astype(np.int32)


class _Predictor(BaseModel):
    def forward(self, *args, **kwargs):
        raise NotImplementedError


@MODELS.register_module(force=True)
class ThresholdPredictor(_Predictor):
    """Connected components of bright pixels: equivariant to flips and rotations."""

    def predict_label_map(self, img, out_shape=None, raw=False):
        label_map, n = ndimage.label(img[..., 0] > 127)
        label_map = at_shape(label_map, out_shape)
        n = int(label_map.max())
        return LabelMapPrediction(label_map.astype(np.int32), np.linspace(1, 0.5, n),
                                  np.zeros(n, np.int64))


@MODELS.register_module(force=True)
class OraclePredictor(_Predictor):
    """Knows the image and its truth; recognises the view's geometry and answers the truth."""

    def __init__(self, image=None, truth=None):
        super().__init__()
        self.image, self.truth = image, truth

    def predict_label_map(self, img, out_shape=None, raw=False):
        def distance(view):
            ref = forward_geometry(self.image, view)
            if ref.shape[:2] != img.shape[:2]:
                ref = cv2.resize(ref, img.shape[1::-1], interpolation=cv2.INTER_LINEAR)
            return np.abs(ref.astype(float) - img).mean() if ref.shape == img.shape else np.inf
        view = min(D4_VIEWS, key=distance)
        label_map = at_shape(forward_geometry(self.truth, view), out_shape)
        n = int(self.truth.max())
        return LabelMapPrediction(label_map, np.ones(n), np.zeros(n, np.int64))


@MODELS.register_module(force=True)
class NoisyPredictor(_Predictor):
    """Random overlapping boxes, seeded by the view's pixels: a deterministic mess."""

    def predict_label_map(self, img, out_shape=None, raw=False):
        rng = np.random.default_rng(int.from_bytes(hashlib.md5(img.tobytes()).digest()[:4], 'little'))
        h, w = img.shape[:2] if out_shape is None else out_shape
        label_map = np.zeros((h, w), np.int32)
        for k in range(1, 13):
            y, x = rng.integers(0, h - 10), rng.integers(0, w - 10)
            label_map[y:y + rng.integers(5, 20), x:x + rng.integers(5, 20)] = k
        n = int(label_map.max())
        present = np.unique(label_map[label_map > 0])
        lut = np.zeros(n + 1, np.int32)
        lut[present] = np.arange(1, len(present) + 1)
        return LabelMapPrediction(lut[label_map], rng.random(len(present)),
                                  np.zeros(len(present), np.int64))


def scene(seed=4, shape=(60, 76)):
    rng = np.random.default_rng(seed)
    truth = random_label_map(rng, shape=shape, num=8)
    return render(truth, rng)[..., :3], truth


def tta(module, views, **kwargs):
    return MODELS.build(dict(type='NucleusTTAModel', module=module, views=views, **kwargs))


def test_flips_and_rotations_give_identical_masks():
    img, _ = scene()
    single = tta(dict(type='ThresholdPredictor'), [dict()]).predict_label_map(img)
    merged = tta(dict(type='ThresholdPredictor'), D4_VIEWS).predict_label_map(img)
    assert len(single) > 0
    assert score_label_maps(single.label_map, merged.label_map).mean() == 1.0


def test_oracle_keeps_score_one_through_all_15_views(r101_views):
    assert len(r101_views) == 15
    img, truth = scene()
    model = tta(dict(type='OraclePredictor', image=img, truth=truth), r101_views)
    assert score_label_maps(truth, model.predict_label_map(img).label_map).mean() == 1.0


def test_view_order_does_not_matter(r101_views):
    img, _ = scene(seed=2)
    first = tta(dict(type='NoisyPredictor'), r101_views, vote_thr=0.1).predict_label_map(img)
    again = tta(dict(type='NoisyPredictor'), r101_views[::-1], vote_thr=0.1).predict_label_map(img)
    assert len(first) > 0
    assert np.array_equal(first.label_map, again.label_map)
    assert np.allclose(first.scores, again.scores)
    assert first.label_map.max() == len(first)  # one label per nucleus: never an overlap


def test_tiles_compose_with_tta():
    rng = np.random.default_rng(5)
    truth = random_label_map(rng, shape=(300, 260), num=150, radius=(4, 12))
    img = render(truth, rng)[..., :3]
    whole = tta(dict(type='ThresholdPredictor'), D4_VIEWS).predict_label_map(img)
    tiled = MODELS.build(dict(type='NucleusTiledModel', tile_size=96, overlap=32,
                              module=dict(type='NucleusTTAModel', views=D4_VIEWS,
                                          module=dict(type='ThresholdPredictor'))))
    out = tiled.predict_label_map(img)
    assert len(out) == len(whole) > 50
    assert score_label_maps(whole.label_map, out.label_map).mean() == 1.0


def test_bad_view_key_fails_loudly():
    with pytest.raises(KeyError, match='rotate'):
        check_view(dict(rotate=1))
    with pytest.raises(ValueError, match='flip'):
        check_view(dict(flip='diagonal'))


def test_bench_view_subsets_merge_as_the_tta_model_does():
    """bench_tta_merge scores view sets from per-view predictions: all views merged its
    way must be the TTA model's own answer (the shipped U-Net: averaged probabilities)."""
    from conftest import load_tool
    from custom_modules.inference.builder import load_weights, predictor_cfg
    from custom_modules.inference.model_zoo import load_config
    bench = load_tool('bench/bench_tta_merge.py')
    zoo = f'{REPO}/model_zoo/nucleiseg_unet'
    tta = MODELS.build(predictor_cfg(load_config(f'{zoo}/config.py'), tta=True, tile=0)).eval()
    load_weights(tta, f'{zoo}/weights.safetensors')
    img = np.full((96, 128, 3), 30, np.uint8)
    for k in range(6):
        cv2.circle(img, (14 + 20 * k, 30 + 7 * k), 7, (200, 200, 200), -1)
    probs = [tta.view_probs(img, view) for view in tta.views]
    merged = bench.merge_subset(tta, probs, list(range(len(tta.views))))
    expected = tta.predict_label_map(img).label_map
    assert expected.max() > 0 and np.array_equal(merged, expected)
    assert bench.view_subset('0,3,1') == [0, 3, 1]
    for bad in ('0,0', '-1', 'a', ''):
        with pytest.raises(Exception, match='view indices'):
            bench.view_subset(bad)
