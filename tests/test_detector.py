"""NucleusMaskRCNN's RPN caps grow with the image's area (tiny model, random weights)."""
import numpy as np
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict

import custom_modules  # noqa: F401
from conftest import REPO
from custom_modules.models.detector import rpn_caps_for_area

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
