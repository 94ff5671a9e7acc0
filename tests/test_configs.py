"""Every config builds; the smoke config trains, resumes, tests with TTA, exports."""
import csv
import glob
import os.path as osp
import pickle

import pytest
from mmdet.registry import MODELS
from mmengine.config import Config

import custom_modules  # noqa: F401
from conftest import REPO, call_tool
from custom_modules.inference.builder import is_ensemble, predictor_cfg
from custom_modules.io.submission import check_submission
from custom_modules.structures.predictor import innermost
from custom_modules.engine.config_check import FIELD, fill_fields
from custom_modules.inference.model_zoo import load_config

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*.py')))
SHIPPED = sorted(glob.glob(osp.join(REPO, 'model_zoo', '*', 'config.py')))
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
pytestmark = pytest.mark.usefixtures('parse_configs_once')  # ~70 loads of 16 files


def data_paths(cfg) -> dict:
    """Every data path of a loaded config: ``{loader.key: path as the dataset joins it}``."""
    paths = {}
    for loader in LOADERS:
        dataset = (cfg.get(loader, None) or {}).get('dataset', None)
        if dataset is None:
            continue
        root = dataset.get('data_root', None) or ''
        paths[f'{loader}.ann_file'] = osp.join(root, dataset.ann_file)
        paths[f'{loader}.img'] = osp.join(root, dataset.data_prefix.img)
    return paths


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_model_tta_and_tiled_models(path):
    cfg = Config.fromfile(path)
    if is_ensemble(cfg):  # members are built in tests/test_unet.py (their checkpoints are trained)
        assert len(cfg.model.members) >= 2
        assert all(osp.isfile(osp.join(REPO, m.config)) for m in cfg.model.members)
        assert MODELS.get(cfg.model.type) is not None
        return
    model = MODELS.build(cfg.model)
    kind = type(model).__name__
    if kind == 'NucleusMaskRCNN':
        # num_classes set once per config and reaching both heads
        assert model.roi_head.bbox_head.num_classes == cfg.num_classes
        assert model.roi_head.mask_head.num_classes == cfg.num_classes
        assert cfg.num_classes == (3 if 'kinds' in path else 1)
    else:
        assert kind == 'NucleusUNet' and model.heads[0] == 'nucleus'
    # the wrappers around the network built once (they take a module as well as its config)
    tta = MODELS.build(dict(cfg.tta_model, module=model))
    assert tta.module is model
    tiled_cfg = predictor_cfg(cfg, tta=True)
    assert tiled_cfg['module'] == dict(cfg.tta_model, module=cfg.model)
    tiled = MODELS.build(dict(tiled_cfg, module=tta))
    assert innermost(tiled) is model
    assert tiled.tile_above >= 1388  # DSB2018's largest images are predicted whole
    assert tiled.align % cfg.model.data_preprocessor.pad_size_divisor == 0  # tiles on its grid
    assert tiled.min_area == cfg.model.postprocess.min_area  # joined tiles: the model's own


@pytest.mark.parametrize('path', CONFIGS + SHIPPED, ids=lambda p: osp.relpath(p, REPO))
def test_one_data_root_override_moves_every_data_path(path):
    # the bases keep paths as fields: no value is left unfilled, none computed at base-read time
    cfg = load_config(path)
    text = str(cfg.to_dict())
    assert not [m for m in FIELD.findall(text) if m in cfg], text
    before = data_paths(cfg)
    assert before, f'{path} has no dataset'
    assert all(not osp.isabs(p) for p in before.values())  # relative: data_root moves them
    elsewhere = '/elsewhere/data/'
    moved = {k: osp.join(elsewhere, p) for k, p in before.items()}
    assert data_paths(load_config(path, {'data_root': elsewhere})) == moved  # what tools do
    raw = Config.fromfile(path)  # mmengine's loading: fields filled after merge_from_dict
    raw.merge_from_dict({'data_root': elsewhere})
    fill_fields(raw)
    assert data_paths(raw) == moved


def test_fields_follow_top_level_keys_and_dotted_overrides_win():
    mnv2 = osp.join(REPO, 'configs', 'dsb_mrcnn_cpu_mnv2.py')
    cfg = load_config(mnv2, {'fold': 2, 'max_iters': 40, 'val_interval': 20,
                             'val_dataloader.dataset.ann_file': 'x/full.json'})
    assert cfg.train_dataloader.dataset.ann_file == 'data/generated/dsb/train_fold2.json'
    assert cfg.val_dataloader.dataset.ann_file == 'x/full.json'  # the dotted option, exactly
    assert cfg.test_dataloader.dataset.ann_file == 'data/generated/dsb/val_fold2.json'
    assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval) == (40, 20)
    assert cfg.param_scheduler[-1].end == 40 and cfg.default_hooks.checkpoint.interval == 20
    # pieces: the U-Net's training pipeline is the Mask R-CNN's plus its targets
    unet = load_config(osp.join(REPO, 'configs', 'dsb_unet_cpu.py'))
    mrcnn = load_config(mnv2).train_dataloader.dataset.pipeline
    types = [t['type'] for t in unet.train_dataloader.dataset.pipeline]
    assert types == [t['type'] for t in mrcnn][:-1] + ['UNetTargets', 'PackDetInputs']
    with pytest.raises(ValueError, match=r'fold=abc: expected an integer'):
        load_config(mnv2, {'fold': 'abc'})


@pytest.mark.parametrize('recipe', ['dsb_mrcnn_cpu_mnv2', 'dsb_unet_cpu', 'dsb_unet_cpu_effl0'])
def test_appearance_arm_is_its_recipe_with_the_augmentations_after_the_crop(recipe):
    base = load_config(osp.join(REPO, 'configs', f'{recipe}.py'))
    arm = load_config(osp.join(REPO, 'configs', f'{recipe}_appearance.py'))
    plain = base.train_dataloader.dataset.pipeline
    with_appearance = arm.train_dataloader.dataset.pipeline
    added = arm.appearance_augment
    # fields through fields (appearance = '{appearance_augment}') are spliced, not nested
    assert all(isinstance(t, dict) for t in with_appearance)
    assert with_appearance[0] == dict(type='LoadNucleusImage', mode='rgb')
    assert with_appearance[1:4] == plain[1:4]  # annotations, zoom, crop
    assert with_appearance[4:4 + len(added)] == added and added[-1] == dict(
        type='NucleusInputMode', mode=base.input_mode)  # the recipe's input, after the jitter
    assert with_appearance[4 + len(added):] == plain[4:]
    assert arm.val_dataloader == base.val_dataloader  # test images load as before
    assert arm.model == base.model


def test_zoom_arm_changes_only_the_zoom_ranges():
    base = load_config(osp.join(REPO, 'configs', 'dsb_unet_cpu.py'))
    arm = load_config(osp.join(REPO, 'configs', 'dsb_unet_cpu_zoom.py'))
    plain, wide = base.train_dataloader.dataset.pipeline, arm.train_dataloader.dataset.pipeline
    changed = [(a, b) for a, b in zip(plain, wide) if a != b]
    assert len(plain) == len(wide) and len(changed) == 1
    assert tuple(changed[0][0]['scale_range']) == (0.6, 1.6)
    assert tuple(changed[0][1]['scale_range']) == (0.5, 2.0)
    assert tuple(changed[0][0]['aspect_range']) == (0.8, 1.25)
    assert tuple(changed[0][1]['aspect_range']) == (0.6, 1.67)


def test_smoke_config_is_the_shipped_recipe_at_smoke_scale():
    smoke = load_config(osp.join(REPO, 'configs', 'dsb_mrcnn_smoke.py'))
    shipped = load_config(osp.join(REPO, 'model_zoo', 'nucleiseg_mrcnn', 'config.py'))
    assert smoke.model.backbone.type == shipped.model.backbone.type == 'MobileNetV2'
    assert smoke.train_dataloader.sampler == shipped.train_dataloader.sampler
    for loader in LOADERS:
        assert (smoke[loader].dataset.pipeline[0] == shipped[loader].dataset.pipeline[0]
                == dict(type='LoadNucleusImage', mode='grey_dark'))
    assert ([t['type'] for t in smoke.train_dataloader.dataset.pipeline]
            == [t['type'] for t in shipped.train_dataloader.dataset.pipeline])
    assert smoke.optim_wrapper == shipped.optim_wrapper


def test_misspelled_keys_fail_loudly():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'dsb_mrcnn_smoke.py'))
    bad = cfg.copy()
    bad.model.postprocess = dict(min_aera=3)
    with pytest.raises(TypeError, match='min_aera'):
        MODELS.build(bad.model)
    bad = Config.fromfile(osp.join(REPO, 'configs', 'dsb_mrcnn_smoke.py'))
    bad.model.roi_head.mask_head.num_clases = 1
    with pytest.raises(TypeError, match='num_clases'):
        MODELS.build(bad.model)


def test_faithful_config_values():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'dsb_mrcnn_r101.py'))
    gen = cfg.model.rpn_head.anchor_generator
    assert [s * gen.scales[0] for s in gen.strides] == [8, 16, 32, 64, 128]
    assert cfg.model.test_cfg.rcnn.score_thr == 0.9 and cfg.model.test_cfg.rcnn.max_per_img == 512
    assert cfg.model.train_cfg.rcnn.sampler.num == 600
    assert cfg.load_from.startswith('https://download.openmmlab.com/')
    assert len(cfg.tta_model.views) == 15  # the solution's own views


def test_tta_view_sets_default_full_and_a_missing_one():
    """``--tta``: the config's default set (the U-Net's 4: identity, flips, half turn);
    ``--tta-views full``: the 15 (the U-Net's 8); a set the config lacks: one line naming
    the sets it has."""
    mrcnn = Config.fromfile(osp.join(REPO, 'configs', 'dsb_mrcnn_cpu_mnv2.py'))
    unet = Config.fromfile(osp.join(REPO, 'configs', 'dsb_unet_cpu.py'))
    assert [len(predictor_cfg(mrcnn, tta=t, tile=0)['views']) for t in (True, 'full')] == [5, 15]
    assert predictor_cfg(mrcnn, tta=True, tile=0)['views'][0] == {}  # the identity first
    assert [len(predictor_cfg(unet, tta=t, tile=0)['views']) for t in (True, 'full')] == [4, 8]
    with pytest.raises(KeyError, match=r'--tta-views fast: .*tta_views_fast \(it has: full\)'):
        predictor_cfg(mrcnn, tta='fast')
    ensemble = Config.fromfile(osp.join(REPO, 'configs', 'dsb_ensemble_cpu.py'))
    assert predictor_cfg(ensemble, tta='full', tile=0)['tta'] == 'full'  # passed to each member


@pytest.mark.slow
def test_smoke_train_resume_test_tta_export(tmp_path, prepared_set):
    src, ann = prepared_set.src, prepared_set.ann
    data = [f'train_dataloader.dataset.ann_file={ann}/train_fold0.json',
            f'train_dataloader.dataset.data_prefix.img={src}/',
            f'val_dataloader.dataset.ann_file={ann}/val_fold0.json',
            f'val_dataloader.dataset.data_prefix.img={src}/',
            f'test_dataloader.dataset.ann_file={ann}/val_fold0.json',
            f'test_dataloader.dataset.data_prefix.img={src}/']
    work = tmp_path / 'work'
    config = 'configs/dsb_mrcnn_smoke.py'
    call_tool('tools/train.py', config, '--work-dir', str(work), '--cfg-options',
              'train_cfg.max_iters=2', 'train_cfg.val_interval=2', *data)
    assert osp.exists(work / 'iter_2.pth')
    proc = call_tool('tools/train.py', config, '--work-dir', str(work), '--resume', '--cfg-options',
                     'train_cfg.max_iters=4', 'train_cfg.val_interval=2', *data)
    assert 'resumed' in (proc.stdout + proc.stderr).lower()
    assert osp.exists(work / 'iter_4.pth')
    assert 'dsb/score' in proc.stdout + proc.stderr

    preds = tmp_path / 'preds.pkl'
    proc = call_tool('tools/test.py', config, str(work / 'iter_4.pth'), '--tta', '--work-dir',
                     str(work), '--out', str(preds), '--show-dir', 'overlays', '--cfg-options',
                     *data)
    assert 'dsb/score' in proc.stdout + proc.stderr
    assert len(glob.glob(str(work / 'overlays' / '*.png'))) == 4
    sub = tmp_path / 'submission.csv'
    call_tool('tools/export_rle.py', str(preds), '--out', str(sub), '--coco-json',
              str(tmp_path / 'results.json'))
    with open(sub) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['ImageId', 'EncodedPixels']
    with open(preds, 'rb') as f:
        predictions = pickle.load(f)
    shapes = {osp.splitext(osp.basename(p['img_path']))[0]: tuple(p['ori_shape'])
              for p in predictions}
    assert len(shapes) == 4 and {r[0] for r in rows[1:]} == set(shapes)
    assert check_submission([(i, p, 0.0) for i, p in rows[1:]], shapes) == []

    # images-only JSON: predicts, no score, still dumps
    proc = call_tool('tools/test.py', config, str(work / 'iter_4.pth'), '--work-dir', str(work),
                     '--out', str(tmp_path / 'p2.pkl'), '--cfg-options',
                     f'test_dataloader.dataset.ann_file={prepared_set.images_only}',
                     f'test_dataloader.dataset.data_prefix.img={src}/')
    assert 'no ground truth' in proc.stdout + proc.stderr
    with open(tmp_path / 'p2.pkl', 'rb') as f:
        assert len(pickle.load(f)) == 8

    # tiles compose with TTA through the same tool
    proc = call_tool('tools/test.py', config, str(work / 'iter_4.pth'), '--tta', '--tile', '48',
                     '--work-dir', str(work), '--cfg-options', 'tile.overlap=16', *data)
    assert 'dsb/score' in proc.stdout + proc.stderr
    proc = call_tool('tools/test.py', config, str(work / 'iter_4.pth'), '--tile', '48', check=False)
    assert proc.returncode == 2 and 'overlap' in proc.stderr

    # a checkpoint of another model, and a misspelt option, are refused before testing
    import torch
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(3)}}, other)
    proc = call_tool('tools/test.py', config, str(other), '--cfg-options', *data, check=False)
    assert proc.returncode == 2 and str(other) in proc.stderr and 'missing' in proc.stderr
    proc = call_tool('tools/test.py', config, str(work / 'iter_4.pth'), '--cfg-options',
                     'model.test_cfg.rcnn.score_th=0.5', check=False)
    assert proc.returncode == 2 and 'score_thr' in proc.stderr
