"""--cfg-options: a misspelt key is an error naming the nearest valid key."""
import pytest
from mmengine.config import Config

from custom_modules.config_check import check_cfg_options


def _cfg():
    return Config(dict(
        model=dict(type='NucleusMaskRCNN',
                   test_cfg=dict(rcnn=dict(score_thr=0.05, nms=dict(iou_threshold=0.5)))),
        train_dataloader=dict(dataset=dict(pipeline=[dict(type='A'), dict(type='B')])),
        load_from=None))


def test_valid_options_pass():
    options = {'model.test_cfg.rcnn.score_thr': 0.5, 'model.test_cfg.rcnn.nms.iou_threshold': 0.3,
               'train_dataloader.dataset.pipeline.1.type': 'C', 'load_from': 'x.pth',
               'model.test_cfg._delete_': True}
    assert check_cfg_options(_cfg(), options) == []


def test_misspelt_leaf_names_the_nearest_key():
    cfg = _cfg()
    cfg.merge_from_dict({'model.test_cfg.rcnn.score_th': 0.5})  # what mmengine does: nothing said
    assert cfg.model.test_cfg.rcnn.score_thr == 0.05
    with pytest.raises(ValueError, match=r"model\.test_cfg\.rcnn\.score_th: the config has no key "
                       r"'score_th' in model\.test_cfg\.rcnn; did you mean "
                       r'model\.test_cfg\.rcnn\.score_thr\?'):
        check_cfg_options(_cfg(), {'model.test_cfg.rcnn.score_th': 0.5})


def test_misspelt_section_and_top_level_key():
    with pytest.raises(ValueError, match=r'did you mean model\.test_cfg\?'):
        check_cfg_options(_cfg(), {'model.tset_cfg.rcnn.score_thr': 0.5})
    with pytest.raises(ValueError, match=r"no key 'load_form'; did you mean load_from\?"):
        check_cfg_options(_cfg(), {'load_form': 'x.pth'})


def test_list_index_past_the_end():
    with pytest.raises(ValueError, match=r"pipeline is a list of 2; '5' is not one of its indices"):
        check_cfg_options(_cfg(), {'train_dataloader.dataset.pipeline.5.type': 'C'})


def test_new_keys_only_warn():
    warnings = check_cfg_options(_cfg(), {'work_dir': 'runs/x',
                                          'model.test_cfg.rcnn.max_per_img': 100,
                                          'model.roi_head.mask_head.num_convs': 2})
    assert warnings == ['work_dir: adds a key absent from the config',
                        'model.test_cfg.rcnn.max_per_img: adds a key absent from the config',
                        'model.roi_head.mask_head.num_convs: adds a key absent from the config '
                        '(model.roi_head)']
