"""Nucleus size: the probe and the rescaling wrapper (custom_modules/inference/diameter.py)."""
import cv2
import numpy as np
import pytest
import torch.nn as nn
from mmengine.config import Config

from custom_modules.evaluation.metric import score_label_maps
from custom_modules.inference.builder import predictor_cfg
from custom_modules.inference.diameter import (SHARPEN, TRUST_COUNT, NucleusRescaledModel,
                                               enlarge, estimate_diameter, parse_diameter,
                                               rescale_factor, supported_coverage)
from custom_modules.inference.tta import NucleusTTAModel
from custom_modules.structures.label_map import LabelMapPrediction


class SizeBlindNet(nn.Module):
    """A network that knows nuclei 6-46 px across and sees specks on larger ones (as ours)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def test_step(self, data):  # BaseTTAModel wraps only models that have one
        raise NotImplementedError

    def predict_label_map(self, img, out_shape=None, raw=False):
        self.calls.append(img.shape[:2])
        num, comp = cv2.connectedComponents((img[:, :, 0] > 128).astype(np.uint8))
        label = np.zeros(img.shape[:2], np.int32)
        k = 0
        for c in range(1, num):
            ys, xs = np.nonzero(comp == c)
            if 6 <= 2 * np.sqrt(len(ys) / np.pi) <= 46:
                k += 1
                label[comp == c] = k
            else:  # too large: three specks, confidently
                for y, x in zip(ys[::max(1, len(ys) // 3)][:3], xs[::max(1, len(xs) // 3)][:3]):
                    k += 1
                    label[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = k
        if out_shape is not None and tuple(out_shape) != label.shape:
            label = cv2.resize(label.astype(np.float32), (out_shape[1], out_shape[0]),
                               interpolation=cv2.INTER_NEAREST).astype(np.int32)
        ids = np.unique(label[label > 0])
        lut = np.zeros(k + 1, np.int32)
        lut[ids] = np.arange(1, len(ids) + 1)
        return LabelMapPrediction(lut[label], np.full(len(ids), 0.95, np.float32),
                                  np.zeros(len(ids), np.int64))


def discs(shape, radius, spacing):
    """Bright discs on a grid (image) and their labels (truth)."""
    img = np.full(shape + (3, ), 20, np.uint8)
    truth = np.zeros(shape, np.int32)
    k = 0
    for cy in range(spacing // 2, shape[0] - radius, spacing):
        for cx in range(spacing // 2, shape[1] - radius, spacing):
            k += 1
            cv2.circle(truth, (cx, cy), radius, k, -1)
    img[truth > 0] = 220
    return img, truth


def test_probe_is_not_fooled_by_specks_on_large_nuclei():
    img, _ = discs((700, 700), 50, 140)  # 100 px nuclei: the network alone sees specks
    est = estimate_diameter(SizeBlindNet().predict_label_map, img)
    assert abs(est.diameter - 100) < 15, est
    assert est.scale < 1
    assert rescale_factor(est.diameter) == pytest.approx(22 / est.diameter)


class CellsWhenSmallNet(SizeBlindNet):
    """Sees the small bright nuclei, except on a small image: there the dim cells around
    them look like nuclei too (as the shipped networks on brightfield images at 1/8)."""

    def predict_label_map(self, img, out_shape=None, raw=False):
        if max(img.shape[:2]) > 200:
            return super().predict_label_map(img, out_shape, raw)
        cells = np.where(img > 60, 255, 0).astype(np.uint8)
        return super().predict_label_map(cells, out_shape, raw)


def test_probe_is_not_fooled_by_cells_that_only_the_smallest_scale_sees():
    img = np.full((1024, 1024, 3), 20, np.uint8)
    for cy in range(128, 1024, 256):
        for cx in range(128, 1024, 256):
            cv2.circle(img, (cx, cy), 48, (100, 100, 100), -1)  # a cell, 96 px
            cv2.circle(img, (cx, cy), 9, (220, 220, 220), -1)  # its nucleus, 18 px
    est = estimate_diameter(CellsWhenSmallNet().predict_label_map, img)
    assert est.coverage[-1][1] > 10 * est.coverage[0][1]  # the cells cover most at 1/8
    assert abs(est.diameter - 18) < 4 and rescale_factor(est.diameter) == 1.0, est


class CellsWhenShrunkNet(SizeBlindNet):
    """Sees the small nuclei at full size; shrunk 4x or more, the cells around them look
    like nuclei, the same size at 1/4 and 1/8 (brightfield of the held-out types)."""

    def predict_label_map(self, img, out_shape=None, raw=False):
        if max(img.shape[:2]) > 300:
            return super().predict_label_map(img, out_shape, raw)
        cells = np.where(img > 60, 255, 0).astype(np.uint8)
        return super().predict_label_map(cells, out_shape, raw)


@pytest.mark.parametrize('trust_count, fooled', [(None, True), (TRUST_COUNT, False)])
def test_probe_trusts_many_nuclei_at_scale_one(trust_count, fooled):
    img = np.full((1024, 1024, 3), 20, np.uint8)
    for cy in range(50, 1024, 100):
        for cx in range(50, 1024, 100):
            cv2.circle(img, (cx, cy), 40, (100, 100, 100), -1)  # a cell, 80 px
            cv2.circle(img, (cx, cy), 9, (220, 220, 220), -1)  # its nucleus, 18 px
    net = CellsWhenShrunkNet()
    est = estimate_diameter(net.predict_label_map, img, trust_count=trust_count)
    if fooled:  # 1/4 and 1/8 agree on the cells, which cover more than the nuclei
        assert abs(est.diameter - 80) < 12 and est.scale < 0.5, est
    else:  # 25 nuclei in the window at scale 1: it wins, no smaller scale is probed
        assert abs(est.diameter - 18) < 4 and est.scale == 1.0, est
        assert net.calls == [(512, 512)]


@pytest.mark.parametrize('radius, probed', [(9, 1), (24, 4)])
def test_probe_trusts_scale_one_only_well_inside_the_probe_range(radius, probed):
    img, _ = discs((1024, 1024), radius, 2 * radius + 12)  # 20+ nuclei in the window
    net = SizeBlindNet()
    estimate_diameter(net.predict_label_map, img)
    assert len(net.calls) == probed  # 48 px nuclei: wider ones would go uncounted at 1


def test_unet_configs_never_trust_scale_one_outright():
    from conftest import REPO
    from custom_modules.inference.model_zoo import load_config
    cfg = load_config(f'{REPO}/configs/dsb_unet_cpu.py')
    assert predictor_cfg(cfg, diameter='auto')['trust_count'] is None
    mrcnn = load_config(f'{REPO}/configs/dsb_mrcnn_cpu_mnv2.py')
    assert 'trust_count' not in predictor_cfg(mrcnn, diameter='auto')  # the default, 20


@pytest.mark.parametrize('radius, kept', [(11, True), (18, True), (4, False)])
def test_probe_keeps_training_sizes_and_upscales_tiny_nuclei(radius, kept):
    img, _ = discs((256, 256), radius, 4 * radius + 8)
    est = estimate_diameter(SizeBlindNet().predict_label_map, img)
    assert abs(est.diameter - 2 * radius) <= 0.2 * 2 * radius + 1, est
    assert (rescale_factor(est.diameter) == 1.0) == kept


def test_probe_of_an_empty_image_keeps_it():
    est = estimate_diameter(SizeBlindNet().predict_label_map, np.zeros((128, 128, 3), np.uint8))
    assert np.isnan(est.diameter) and rescale_factor(est.diameter) == 1.0


@pytest.mark.parametrize('wrap_tta', [False, True])
def test_rescaled_model_finds_large_nuclei_at_the_input_size(wrap_tta):
    img, truth = discs((560, 700), 50, 140)
    net = SizeBlindNet()
    module = NucleusTTAModel(module=net, views=[{}, dict(flip='horizontal')]) if wrap_tta else net
    plain = module.predict_label_map(img)
    assert score_label_maps(truth, plain.label_map).mean() < 0.1  # specks only
    model = NucleusRescaledModel(module=module, diameter='auto')
    pred = model.predict_label_map(img)
    assert pred.label_map.shape == img.shape[:2]
    assert len(pred) == truth.max()
    assert score_label_maps(truth, pred.label_map).mean() > 0.8
    assert abs(model.last_estimate.diameter - 100) < 15


def test_given_diameter_rescales_without_probing():
    img, truth = discs((420, 420), 40, 120)
    net = SizeBlindNet()
    model = NucleusRescaledModel(module=net, diameter=80.0)
    pred = model.predict_label_map(img)
    assert net.calls == [(116, 116)]  # one call, at 22/80 of the size
    assert pred.label_map.shape == img.shape[:2] and len(pred) == truth.max()


def test_small_nuclei_are_enlarged_by_lanczos():
    img, truth = discs((100, 100), 4, 20)  # 8 px nuclei: 2.75x to 22 px, rounded up to 3x
    seen = []
    net = SizeBlindNet()
    original = net.predict_label_map
    net.predict_label_map = lambda im, out_shape=None, raw=False: (
        seen.append(im), original(im, out_shape, raw))[1]
    pred = NucleusRescaledModel(module=net, diameter=8.0).predict_label_map(img)
    assert np.array_equal(seen[0], enlarge(img, 3.0, SHARPEN))
    assert np.array_equal(enlarge(img, 3.0, 0.0),
                          cv2.resize(img, (300, 300), interpolation=cv2.INTER_LANCZOS4))
    assert pred.label_map.shape == img.shape[:2] and len(pred) == truth.max()


@pytest.mark.parametrize('dtype, scale', [(np.uint8, 1), (np.uint16, 250), (np.float32, 0.01)])
def test_enlarged_images_are_sharpened_within_their_range(dtype, scale):
    img, truth = discs((60, 60), 4, 20)
    img = (img * scale).astype(dtype)
    plain, sharp = enlarge(img, 3.0, 0.0), enlarge(img, 3.0, 1.0)
    assert sharp.dtype == img.dtype and sharp.shape == plain.shape
    low, high = ((np.iinfo(dtype).min, np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer)
                 else (img.min(), img.max()))
    assert sharp.min() >= low and sharp.max() <= high  # no wrap-around, no new range
    rim = np.abs(np.diff(sharp[:, :, 0].astype(np.float64), axis=1)).max()
    assert rim > np.abs(np.diff(plain[:, :, 0].astype(np.float64), axis=1)).max()  # steeper rims


def test_sharpening_keeps_to_the_finite_range_of_a_float_image_with_nan():
    img, _ = discs((60, 60), 4, 20)
    img = img.astype(np.float32) / 255
    img[0, 0] = np.nan
    sharp = enlarge(img, 3.0, 1.0)
    finite = sharp[np.isfinite(sharp)]
    assert finite.size > 0.9 * sharp.size
    assert finite.min() >= np.nanmin(img) and finite.max() <= np.nanmax(img)
    assert enlarge(np.full((20, 20), np.nan, np.float32), 3.0, 1.0).shape == (60, 60)


@pytest.mark.parametrize('diameter, factor', [
    (8.0, 3.0),     # 2.75x: a whole factor, rounded up (24 px)
    (11.0, 2.0),    # exactly 2x
    (4.0, 4.0),     # 5.5x: the largest factor
    (15.0, 22 / 15),  # under 2x: as it is
    (44.0, 0.5), (100.0, 0.22)])  # shrinking: as it is
def test_enlargements_of_2x_or_more_are_whole_factors(diameter, factor):
    assert rescale_factor(diameter, keep_range=None) == pytest.approx(factor)


def test_training_size_images_are_predicted_unchanged():
    img, _ = discs((256, 256), 11, 52)
    net = SizeBlindNet()
    expected = net.predict_label_map(img)
    pred = NucleusRescaledModel(module=net, diameter='auto').predict_label_map(img)
    assert np.array_equal(pred.label_map, expected.label_map)
    assert net.calls.count((256, 256)) == 2  # ours and the probe's, which the wrapper reuses


@pytest.mark.parametrize('value, expected', [('auto', 'auto'), ('AUTO', 'auto'), ('none', None),
                                             (None, None), ('0', None), ('30', 30.0), (12.5, 12.5)])
def test_parse_diameter(value, expected):
    assert parse_diameter(value) == expected


@pytest.mark.parametrize('value', ['abc', '-5', 'nan', 'inf'])
def test_parse_diameter_refuses(value):
    with pytest.raises(ValueError, match='diameter'):
        parse_diameter(value)


def test_predictor_cfg_rescales_outermost():
    cfg = Config(dict(model=dict(type='NucleusMaskRCNN'), tile=dict(size=512, overlap=128),
                      tta_model=dict(type='NucleusTTAModel', views=[{}]),
                      nucleus_size=dict(train_diameter=30.0)))
    model = predictor_cfg(cfg, tta=True, diameter='auto')
    assert model['type'] == 'NucleusRescaledModel' and model['train_diameter'] == 30.0
    assert model['module']['type'] == 'NucleusTiledModel'
    assert model['module']['module']['type'] == 'NucleusTTAModel'
    assert predictor_cfg(cfg, diameter=None)['type'] == 'NucleusTiledModel'
    with pytest.raises(ValueError, match='diameter'):
        predictor_cfg(cfg, diameter='big')


def test_predict_refuses_a_bad_diameter_before_any_work(tmp_path, capsys):
    import sys
    from conftest import REPO
    from custom_modules.inference.inferencer import NucleusInferencer
    sys.path.insert(0, f'{REPO}/tools')
    import predict
    img, _ = discs((64, 64), 8, 32)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    stub = NucleusInferencer.from_predictor(SizeBlindNet())
    out = tmp_path / 'out'
    assert predict.main([str(tmp_path / 'a.png'), '--out', str(out), '--diameter', 'big'],
                        inferencer=stub) == 2
    assert "diameter must be 'auto', 'none' or pixels, got 'big'" in capsys.readouterr().err
    assert not out.exists()


def test_supported_coverage_needs_a_neighbour_of_the_same_size():
    found = [(1.0, 0.02, 19.0), (0.5, 0.01, 21.0), (0.25, 0.04, 53.0), (0.125, 0.07, 98.0)]
    assert supported_coverage(found) == [0.02, 0.01, 0.0, 0.0]  # brightfield cells: alone
    found = [(1.0, 0.01, 18.0), (0.5, 0.2, 93.0), (0.25, 0.22, 92.0), (0.125, 0.19, 95.0)]
    assert supported_coverage(found) == [0.01, 0.2, 0.2, 0.19]  # large nuclei: agree
    assert supported_coverage([(1.0, 0.1, 20.0), (0.5, 0.0, np.nan)]) == [0.1, 0.0]
