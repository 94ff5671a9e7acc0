"""--cfg-options: a misspelt key is an error naming the nearest valid key."""
import pytest
from mmengine.config import Config

from custom_modules.engine.config_check import check_cfg_options


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


def test_text_for_a_number_or_boolean_is_an_error():
    cfg = Config(dict(train_cfg=dict(max_iters=6, val_interval=2), flag=True,
                      model=dict(test_cfg=dict(rcnn=dict(score_thr=0.05)))))
    with pytest.raises(ValueError, match=r'train_cfg\.max_iters=abc: expected an integer '
                       r'\(the config has 6\)'):
        check_cfg_options(cfg, {'train_cfg.max_iters': 'abc'})
    with pytest.raises(ValueError, match=r'flag=yes: expected True or False'):
        check_cfg_options(cfg, {'flag': 'yes'})
    with pytest.raises(ValueError, match=r'score_thr=high: expected a number'):
        check_cfg_options(cfg, {'model.test_cfg.rcnn.score_thr': 'high'})
    assert check_cfg_options(cfg, {'train_cfg.max_iters': 100, 'flag': False,
                                   'model.test_cfg.rcnn.score_thr': [0.5, 0.6],
                                   'train_cfg.val_interval': None}) == []


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_tools_refuse_text_for_max_iters_in_one_line(tool, tmp_path, capsys, monkeypatch):
    import os.path as osp

    from conftest import REPO, load_tool
    module = load_tool(f'tools/{tool}.py')
    monkeypatch.setenv('LOCAL_RANK', '0')
    ckpt = tmp_path / 'ckpt.pth'
    ckpt.write_bytes(b'never read')
    argv = [osp.join(REPO, 'configs/dsb_mrcnn_smoke.py')] + ([str(ckpt)] if tool == 'test' else [])
    with pytest.raises(SystemExit) as exit_info:
        module.main(argv + ['--work-dir', str(tmp_path / 'work'),
                            '--cfg-options', 'train_cfg.max_iters=abc'])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and 'Traceback' not in err
    lines = [line for line in err.splitlines() if 'error' in line]
    assert len(lines) == 1 and lines[0].endswith(
        'error: --cfg-options: train_cfg.max_iters=abc: expected an integer (the config has 6)'), err
    assert not (tmp_path / 'work').exists()


def test_dotted_option_into_a_field_reaches_where_it_is_filled_in():
    """``appearance.0.prob`` changes the training pipeline that '{appearance}' fills."""
    import os.path as osp

    from conftest import REPO

    from custom_modules.inference.model_zoo import load_config
    path = osp.join(REPO, 'configs', 'dsb_unet_cpu_downup.py')

    def down_up(cfg):
        return [step for step in cfg.train_dataloader.dataset.pipeline
                if step['type'] == 'RandomDownUp']
    assert [step['prob'] for step in down_up(load_config(path))] == [0.3]
    cfg = load_config(path, {'appearance.0.prob': 0.15,
                             'train_dataloader.dataset.ann_file': 'elsewhere.json'})
    assert [step['prob'] for step in down_up(cfg)] == [0.15] and cfg.appearance[0]['prob'] == 0.15
    assert cfg.train_dataloader.dataset.ann_file == 'elsewhere.json'
    # train_pipeline is ['{train_load}', '{augment}', '{pack}']: its filled indices differ.
    with pytest.raises(ValueError, match=r'train_pipeline\.3\.prob: train_pipeline is built '
                                         r'from fields \(\{augment\}, \{pack\}, \{train_load\}\)'):
        load_config(path, {'train_pipeline.3.prob': 0.5})


def test_split_field_options_on_a_plain_config():
    from custom_modules.engine.config_check import split_field_options
    cfg = Config(dict(path='{root}x/{fold}', piece=[dict(p=1)], pipe=['{piece}'], fold=0,
                      built=['{piece}'], uses=['{built}']))
    before, after = split_field_options(cfg, {'root.z': 1, 'piece.0.p': 2, 'pipe.0.p': 3})
    assert before == {'piece.0.p': 2} and after == {'root.z': 1, 'pipe.0.p': 3}
    with pytest.raises(ValueError, match=r'built\.0\.p: built is built from fields \(\{piece\}\)'):
        split_field_options(cfg, {'built.0.p': 4})
