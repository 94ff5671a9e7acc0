"""NucleusMaskRCNN's RPN caps grow with the image's area (tiny model, random weights); its
RPN's objectness floor drops only what is under it; its RoI extractor samples its own
ratio at test time."""
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.structures import InstanceData

import custom_modules  # noqa: F401
from conftest import REPO
from custom_modules.models.detector import rpn_caps_for_area
from custom_modules.models.rpn_head import NucleusRPNHead

SMOKE = f'{REPO}/configs/dsb_mrcnn_smoke.py'


def test_caps_scale_with_the_area_above_the_reference_only():
    rpn = ConfigDict(nms_pre=500, max_per_img=200, nms=dict(iou_threshold=0.7))
    assert rpn_caps_for_area(rpn, 4096, None) is rpn
    assert rpn_caps_for_area(rpn, 4096, 4096) is rpn
    assert rpn_caps_for_area(rpn, 100, 4096) is rpn
    big = rpn_caps_for_area(rpn, 4 * 4096 + 1, 4096)
    assert (big.nms_pre, big.max_per_img) == (2001, 801)  # rounded up
    assert big.nms == rpn.nms and (rpn.nms_pre, rpn.max_per_img) == (500, 200)  # left as given


def test_a_large_image_gets_more_proposals_a_small_one_the_configs(monkeypatch):
    cfg = Config.fromfile(SMOKE)
    cfg.model.rpn_caps_area = 64 * 64
    model = MODELS.build(cfg.model).eval()
    seen = []
    predict_by_feat = model.rpn_head.predict_by_feat

    def spy(*args, cfg=None, **kwargs):
        seen.append((cfg.nms_pre, cfg.max_per_img))
        return predict_by_feat(*args, cfg=cfg, **kwargs)

    monkeypatch.setattr(model.rpn_head, 'predict_by_feat', spy)
    rng = np.random.default_rng(0)
    model.predict_label_map(rng.integers(0, 255, (48, 56, 3), dtype=np.uint8))
    model.predict_label_map(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8))
    assert seen == [(500, 200), (2000, 800)]  # the smoke config's caps, then x4


def rpn_boxes(n=300, seed=0):
    """``n`` scored boxes in two levels, many overlapping, as the RPN hands them to its NMS."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    wh = torch.rand(n, 2, generator=g) * 30 + 4
    return InstanceData(bboxes=torch.cat([xy, xy + wh], 1), scores=torch.rand(n, generator=g) ** 3,
                        level_ids=torch.randint(0, 2, (n,), generator=g))


def proposals(head, results, **cfg):
    cfg = ConfigDict(dict(nms_pre=1000, max_per_img=1000, nms=dict(iou_threshold=0.7), **cfg))
    return head._bbox_post_process(results.clone(), cfg)


def test_rpn_objectness_floor_drops_only_boxes_under_it():
    head = NucleusRPNHead(in_channels=8)
    mmdet_head = MODELS.build(dict(type='RPNHead', in_channels=8))
    boxes = rpn_boxes()
    plain = proposals(mmdet_head, boxes)
    for cfg in ({}, dict(score_thr=0.0)):  # no floor: MMDetection's proposals, exactly
        same = proposals(head, boxes, **cfg)
        assert torch.equal(same.bboxes, plain.bboxes) and torch.equal(same.scores, plain.scores)
    floored = proposals(head, boxes, score_thr=0.3)
    # the same NMS run on the boxes at or over the floor: nothing else changes
    expected = proposals(mmdet_head, boxes[boxes.scores >= 0.3])
    assert torch.equal(floored.bboxes, expected.bboxes) and len(floored) < len(plain)
    assert bool((floored.scores >= 0.3).all())
    nothing = proposals(head, boxes, score_thr=0.999)  # all under it: no proposal, no error
    assert len(nothing) == 0 and nothing.bboxes.shape == (0, 4)


def test_rpn_objectness_floor_per_level_spares_the_levels_at_zero():
    head = NucleusRPNHead(in_channels=8)  # MMDetection's default: 5 levels
    boxes = rpn_boxes()
    spared = proposals(head, boxes, score_thr=[0.3, 0, 0, 0, 0])
    at_level_0 = boxes.level_ids == 0
    expected = proposals(head, boxes[~at_level_0 | (boxes.scores >= 0.3)])
    assert torch.equal(spared.bboxes, expected.bboxes)
    assert len(proposals(head, boxes, score_thr=[0.3] * 5)) < len(spared)


@pytest.mark.parametrize('floor', [-0.1, 1.0, float('nan'), [0.1, 0.1]])
def test_rpn_objectness_floor_outside_0_1_is_refused(floor):
    with pytest.raises(ValueError, match='test_cfg.rpn.score_thr'):
        proposals(NucleusRPNHead(in_channels=8), rpn_boxes(20), score_thr=floor)


def test_the_cpu_recipe_floors_its_fine_levels_the_r101_has_no_floor():
    cpu = Config.fromfile(f'{REPO}/configs/dsb_mrcnn_cpu_mnv2.py').model
    assert cpu.rpn_head.type == 'NucleusRPNHead'
    # the coarse levels find the large nuclei: never floored
    assert cpu.test_cfg.rpn.score_thr == [0.02, 0.02, 0.02, 0, 0]
    assert 'score_thr' not in cpu.train_cfg.rpn_proposal  # training: MMDetection's RPN
    r101 = Config.fromfile(f'{REPO}/configs/dsb_mrcnn_r101.py').model  # the solution's: none
    assert r101.rpn_head.type == 'NucleusRPNHead' and 'score_thr' not in r101.test_cfg.rpn
    assert r101.roi_head.bbox_roi_extractor.type == 'SingleRoIExtractor'


def roi_inputs(seed=0):
    """Two FPN levels of features and 40 RoIs of 8-60 px (some on each level)."""
    g = torch.Generator().manual_seed(seed)
    feats = (torch.rand(1, 4, 32, 32, generator=g), torch.rand(1, 4, 16, 16, generator=g))
    xy = torch.rand(40, 2, generator=g) * 60
    wh = torch.rand(40, 2, generator=g) * 52 + 8
    return feats, torch.cat([torch.zeros(40, 1), xy, xy + wh], 1)


def extractor(**kwargs):
    return MODELS.build(dict(type='NucleusRoIExtractor', roi_layer=dict(
        type='RoIAlign', output_size=7, sampling_ratio=0), out_channels=4,
        featmap_strides=[4, 8], finest_scale=16, **kwargs))


def test_roi_extractor_samples_its_test_ratio_in_eval_mode_only():
    feats, rois = roi_inputs()
    mmdet = MODELS.build(dict(type='SingleRoIExtractor', roi_layer=dict(
        type='RoIAlign', output_size=7, sampling_ratio=0), out_channels=4,
        featmap_strides=[4, 8], finest_scale=16)).eval()
    one = MODELS.build(dict(type='SingleRoIExtractor', roi_layer=dict(
        type='RoIAlign', output_size=7, sampling_ratio=1), out_channels=4,
        featmap_strides=[4, 8], finest_scale=16)).eval()
    ours = extractor(test_sampling_ratio=1)
    assert torch.equal(ours(feats, rois), mmdet(feats, rois))  # built in training mode
    assert torch.equal(ours.eval()(feats, rois), one(feats, rois))
    assert not torch.equal(one(feats, rois), mmdet(feats, rois))  # the ratio matters here
    assert torch.equal(ours.train()(feats, rois), mmdet(feats, rois))  # and back
    assert all(layer.sampling_ratio == 0 for layer in ours.roi_layers)
    same = extractor().eval()  # no test ratio: the training's, MMDetection's output
    assert torch.equal(same(feats, rois), mmdet(feats, rois))
    assert ours.state_dict().keys() == mmdet.state_dict().keys()  # checkpoints load alike


@pytest.mark.parametrize('ratio', [-1, 1.5, True, '1'])
def test_roi_extractor_refuses_a_bad_test_ratio(ratio):
    with pytest.raises(ValueError, match='test_sampling_ratio'):
        extractor(test_sampling_ratio=ratio)


def test_the_cpu_recipe_samples_one_point_per_bin_at_test_time():
    cfg = Config.fromfile(f'{REPO}/configs/dsb_mrcnn_cpu_mnv2.py')
    box = cfg.model.roi_head.bbox_roi_extractor
    assert box.type == 'NucleusRoIExtractor' and box.test_sampling_ratio == 1
    assert box.roi_layer.sampling_ratio == 1  # in training too since 2026-12-03
    train = cfg.model.train_cfg
    assert train.rcnn.sampler.num == 128 and train.rpn_proposal.max_per_img == 500
    shipped = Config.fromfile(f'{REPO}/model_zoo/nucleiseg_mrcnn/config.py').model
    assert shipped.roi_head.bbox_roi_extractor.roi_layer.sampling_ratio == 0  # what trained it
    assert shipped.roi_head.bbox_roi_extractor.test_sampling_ratio == 1  # inference as the recipe
    assert shipped.train_cfg.rcnn.sampler.num == 256
    assert (shipped.train_cfg.rpn_proposal.nms_pre, shipped.train_cfg.rpn_proposal.max_per_img) \
        == (2000, 1000)
