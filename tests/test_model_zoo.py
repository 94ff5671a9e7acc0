"""Shipped model folders: loading without pickle, thresholds.json, publish_model, the listing."""
import json
import os
import pickle
import sys

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from safetensors.torch import load_file, save

from conftest import REPO
from custom_modules.engine.run_settings import make_settings
from custom_modules.inference import model_zoo
from custom_modules.inference.inferencer import NucleusInferencer
from custom_modules.inference.model_zoo import load_config
from custom_modules.structures.predictor import innermost

sys.path.insert(0, f'{REPO}/tools')
import predict  # noqa: E402
import publish_model  # noqa: E402

SMOKE = f'{REPO}/configs/dsb_mrcnn_smoke.py'
DEFAULT = os.path.join(model_zoo.MODELS_DIR, model_zoo.DEFAULT_MODEL)
needs_default = pytest.mark.skipif(not model_zoo.is_model_folder(DEFAULT),
                                   reason=f'{DEFAULT} not in this checkout')


def smoke_checkpoint(path, seed=0) -> dict:
    """A smoke Mask R-CNN's weights (random), saved as tools/train.py would."""
    torch.manual_seed(seed)
    state = MODELS.build(Config.fromfile(SMOKE).model).state_dict()
    torch.save(dict(state_dict=state, meta=dict(iter=6)), path)
    return state


def publish(tmp_path, name, seed=0, *extra) -> dict:
    state = smoke_checkpoint(tmp_path / f'{name}.pth', seed)
    assert publish_model.main([str(tmp_path / f'{name}.pth'), SMOKE,
                               str(tmp_path / 'models' / name), *extra]) == 0
    return state


def no_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('a shipped model must load without unpickling')
    for name in ('load', 'loads', 'Unpickler'):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, 'load', refuse)


@needs_default
def test_the_default_model_loads_without_unpickling(monkeypatch):
    no_pickle(monkeypatch)
    inferencer = NucleusInferencer()
    assert inferencer.config_path == os.path.join(DEFAULT, 'config.py')
    img = np.zeros((64, 64, 3), np.uint8)
    img[20:30, 20:30] = 200
    assert inferencer(img)[0]['label_map'].shape == (64, 64)
    with pytest.raises(AssertionError, match='unpickling'):  # the guard works
        torch.load(os.path.join(DEFAULT, 'weights.safetensors'))


@pytest.mark.parametrize('name', model_zoo.list_models())
def test_every_shipped_models_thresholds_come_from_its_json(name):
    folder = model_zoo.model_folder(name)
    with open(os.path.join(folder, 'thresholds.json')) as f:
        settings = json.load(f)['settings']
    cfg = load_config(os.path.join(folder, 'config.py'))
    for key, value in settings.items():
        node = cfg
        for part in key.split('.'):
            node = node[part]
        assert node == value, key
    assert model_zoo.folder_size_mb(folder) < 40


@pytest.mark.skipif('nucleiseg_mrcnn' not in model_zoo.list_models(), reason='no nucleiseg_mrcnn')
def test_the_mask_rcnns_tuned_thresholds_reach_the_network():
    cfg = load_config(os.path.join(model_zoo.model_folder('nucleiseg_mrcnn'), 'config.py'))
    assert cfg.model.test_cfg.rcnn.score_thr == 0.9 and cfg.model.postprocess.min_area == 30
    net = innermost(NucleusInferencer('nucleiseg_mrcnn').predictor)
    assert net.thresholds.score.tolist() == [0.9] and net.thresholds.mask.tolist() == [0.45]
    assert net.postprocess.min_area == 30
    assert 40 > model_zoo.folder_size_mb(model_zoo.model_folder('nucleiseg_mrcnn')) > 1


def test_publish_round_trip(tmp_path, capsys):
    (tmp_path / 'tuned.json').write_text(model_zoo.thresholds_json(
        {'model.test_cfg.rcnn.score_thr': 0.3, 'model.postprocess.min_area': 7}, 'a test'))
    state = publish(tmp_path, 'smoke', 0, '--half', '--thresholds', str(tmp_path / 'tuned.json'))
    folder = tmp_path / 'models' / 'smoke'
    assert sorted(os.listdir(folder)) == sorted(['weights.safetensors', 'config.py',
                                                 'thresholds.json', 'MODEL_CARD.md',
                                                 'metrics.json'])
    assert 'MB in all' in capsys.readouterr().out
    assert f"_base_ = [{SMOKE!r}]" in (folder / 'config.py').read_text()  # outside the repo
    assert 'python tools/train.py' in (folder / 'MODEL_CARD.md').read_text()
    assert json.loads((folder / 'metrics.json').read_text())['fold0']['score'] is None
    stored = load_file(folder / 'weights.safetensors')
    assert stored.keys() == state.keys()
    for key, value in state.items():
        expected = value.half() if value.is_floating_point() else value
        assert stored[key].dtype == expected.dtype and torch.equal(stored[key], expected), key
    inferencer = NucleusInferencer(str(folder))  # a folder path works as a name does
    net = innermost(inferencer.predictor)
    assert net.thresholds.score.tolist() == [0.3] and net.postprocess.min_area == 7
    for key, value in net.state_dict().items():
        expected = state[key].half().float() if state[key].is_floating_point() else state[key]
        assert torch.equal(value, expected), key
    assert 'smoke' in model_zoo.models_table(str(tmp_path / 'models'))


def test_publish_without_thresholds_writes_the_configs_own(tmp_path):
    publish(tmp_path, 'plain')
    settings = model_zoo.read_thresholds(tmp_path / 'models' / 'plain' / 'thresholds.json')
    assert settings['model.test_cfg.rcnn.score_thr'] == 0.05  # the smoke config's
    assert settings['model.postprocess.min_area'] == 10


def test_publish_refuses_what_does_not_fit_and_writes_nothing(tmp_path, capsys):
    torch.save({'state_dict': {'conv.weight': torch.zeros(1)}}, tmp_path / 'other.pth')
    out = tmp_path / 'models' / 'x'
    assert publish_model.main([str(tmp_path / 'other.pth'), SMOKE, str(out)]) == 2
    assert 'does not fit the model' in capsys.readouterr().err and not out.exists()
    smoke_checkpoint(tmp_path / 's.pth')
    (tmp_path / 'bad.json').write_text('{"settings": {"model.test_cfg.rcnn.score_th": 0.3}}')
    assert publish_model.main([str(tmp_path / 's.pth'), SMOKE, str(out), '--thresholds',
                               str(tmp_path / 'bad.json')]) == 2
    err = capsys.readouterr().err
    assert 'bad.json' in err and 'did you mean model.test_cfg.rcnn.score_thr' in err
    assert not out.exists()


def test_bad_thresholds_files_are_named(tmp_path):
    path = tmp_path / 'thresholds.json'
    for text, message in (('{"settings": {"a.b": "high"}}', 'a number'), ('[1]', 'expected'),
                          ('{', 'cannot read')):
        path.write_text(text)
        with pytest.raises(model_zoo.ModelZooError, match=message):
            model_zoo.read_thresholds(str(path))


@pytest.mark.slow
def test_an_ensemble_names_shipped_models_as_members(tmp_path):
    publish(tmp_path, 'a', 0)
    publish(tmp_path, 'b', 1)
    (tmp_path / 'models' / 'a' / 'thresholds.json').write_text(model_zoo.thresholds_json(
        {'model.test_cfg.rcnn.score_thr': 0.2}))
    ens = tmp_path / 'models' / 'ens'
    ens.mkdir()
    (ens / 'config.py').write_text(
        f"_base_ = [{REPO + '/configs/dsb_ensemble_cpu.py'!r}]\n"
        "model = dict(members=[dict(model='a', weight=1.0), dict(model='b', weight=2.0)])\n")
    (ens / 'weights.safetensors').write_bytes(save({}))  # an ensemble has no weights of its own
    (ens / 'thresholds.json').write_text(model_zoo.thresholds_json({'model.vote_thr': 0.4}))
    assert model_zoo.list_models(str(tmp_path / 'models')) == ['a', 'b', 'ens']
    cfg = load_config(str(ens / 'config.py'))
    assert cfg.model.vote_thr == 0.4
    assert [m['checkpoint'] for m in cfg.model.members] == [
        str(tmp_path / 'models' / n / 'weights.safetensors') for n in 'ab']
    predictor = innermost(NucleusInferencer(str(ens)).predictor)
    first, second = predictor.members
    assert predictor.weights == [1.0, 2.0] and first.thresholds.score.tolist() == [0.2]
    assert second.thresholds.score.tolist() == [0.05]  # b's own thresholds.json
    assert not torch.equal(first.state_dict()['rpn_head.rpn_cls.weight'],
                           second.state_dict()['rpn_head.rpn_cls.weight'])
    # a rerun record covers every file the ensemble reads, so an edited member is redone
    files = model_zoo.loaded_files(str(ens / 'config.py'))
    assert files == sorted(str(tmp_path / 'models' / n / f) for n, f in [
        ('ens', 'thresholds.json')] + [(n, f) for n in 'ab' for f in (
            'config.py', 'weights.safetensors', 'thresholds.json')])
    before = make_settings(str(ens / 'config.py'), str(ens / 'weights.safetensors'), {}, files)
    (tmp_path / 'models' / 'a' / 'thresholds.json').write_text(model_zoo.thresholds_json(
        {'model.test_cfg.rcnn.score_thr': 0.3}))
    after = make_settings(str(ens / 'config.py'), str(ens / 'weights.safetensors'), {}, files)
    assert before != after and before['weights_sha256'] == after['weights_sha256']
    (ens / 'config.py').write_text((ens / 'config.py').read_text().replace("'b'", "'nope'"))
    with pytest.raises(ValueError, match="ensemble member nope: no such shipped model"):
        load_config(str(ens / 'config.py'))


@needs_default
def test_list_models(capsys):
    assert predict.main(['--list-models']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ['model', 'default', 'fold-0']
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert rows[model_zoo.DEFAULT_MODEL][1] == 'yes'
    assert sum(row[1] == 'yes' for row in rows.values()) == 1
    if 'nucleiseg_mrcnn' in rows:
        assert rows['nucleiseg_mrcnn'][1:5] == ['0.5424', '0.5929', '0.4874', '0.3181']
        assert 1 < float(rows['nucleiseg_mrcnn'][-2]) < 40  # MB, before the date


def test_an_unknown_model_is_one_line_and_exit_2(tmp_path, capsys):
    code = predict.main([str(tmp_path), '--out', str(tmp_path / 'o'), '--model', 'nope'])
    err = [line for line in capsys.readouterr().err.splitlines() if 'pkg_resources' not in line]
    assert code == 2 and len(err) == 1 and 'nope: no such shipped model' in err[0], err
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(tmp_path), '--out', str(tmp_path / 'o'), '--model', 'x',
                      '--config', SMOKE])
    assert exit_info.value.code == 2
    with pytest.raises(ValueError, match='brings its weights'):
        NucleusInferencer(model_zoo.DEFAULT_MODEL, 'other.pth')
