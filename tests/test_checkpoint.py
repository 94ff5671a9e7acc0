"""Checkpoint schemes: torchvision:// without torchvision, clear offline errors."""
import os.path as osp
from urllib.error import URLError

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner import checkpoint as mm_checkpoint

from conftest import REPO
from custom_modules.engine.checkpoint import (CheckpointError, check_checkpoint_fits,
                                              load_checkpoint_file, load_torchvision,
                                              torchvision_url)


def test_torchvision_url_needs_no_torchvision():
    # mmengine's table (or torchvision's, where it loads) names the ImageNet weights.
    assert torchvision_url('resnet101').startswith('https://download.pytorch.org/models/resnet101')
    with pytest.raises(KeyError, match='resnet7'):
        torchvision_url('resnet7')


def test_torchvision_scheme_fetches_the_url(monkeypatch):
    fetched = []
    monkeypatch.setattr(mm_checkpoint, 'load_url',
                        lambda url, **kwargs: fetched.append(url) or {'state_dict': {}})
    assert load_torchvision('torchvision://resnet50') == {'state_dict': {}}
    assert fetched == [torchvision_url('resnet50')]


def _offline(url, **kwargs):
    raise URLError('[Errno -3] Temporary failure in name resolution')


def test_offline_backbone_init_says_what_to_do(monkeypatch):
    monkeypatch.setattr(mm_checkpoint, 'load_url', _offline)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'dsb_mrcnn_r101.py'))
    model = MODELS.build(cfg.model)
    with pytest.raises(RuntimeError, match=r'resnet101.*model\.backbone\.init_cfg=None'):
        model.init_weights()
    with pytest.raises(RuntimeError, match=r'cannot download https://download\.openmmlab\.com'):
        mm_checkpoint.CheckpointLoader.load_checkpoint(cfg.load_from)


def _tiny(width=3):
    return torch.nn.Sequential(torch.nn.Linear(2, width), torch.nn.BatchNorm1d(width))


def test_checkpoint_that_fits(tmp_path):
    path = tmp_path / 'ok.pth'
    torch.save({'meta': {'epoch': 1}, 'state_dict': _tiny().state_dict()}, path)
    assert check_checkpoint_fits(_tiny(), str(path))['meta'] == {'epoch': 1}
    wrapped = {'module.' + k: v for k, v in _tiny().state_dict().items()}  # a bare, wrapped one
    torch.save(wrapped, path)
    check_checkpoint_fits(_tiny(), str(path))


def test_truncated_or_foreign_file_named(tmp_path):
    path = tmp_path / 'epoch_3.pth'
    torch.save({'state_dict': _tiny().state_dict()}, path)
    path.write_bytes(path.read_bytes()[:200])
    truncated = r'epoch_3\.pth: not a loadable checkpoint \(truncated\?\)'
    with pytest.raises(CheckpointError, match=truncated):
        load_checkpoint_file(str(path))
    with pytest.raises(CheckpointError, match='epoch_3.pth: not a loadable checkpoint'):
        mm_checkpoint.CheckpointLoader.load_checkpoint(str(path))  # training's resume too
    path.write_text('hello')
    with pytest.raises(CheckpointError, match='not a loadable checkpoint'):
        check_checkpoint_fits(_tiny(), str(path))
    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match='not a checkpoint .* list'):
        load_checkpoint_file(str(path))
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))


def test_checkpoint_of_another_model_named(tmp_path):
    path = tmp_path / 'other.pth'
    state = _tiny(width=4).state_dict()
    state['extra.weight'] = torch.zeros(1)
    del state['1.running_var']
    torch.save({'state_dict': state}, path)
    with pytest.raises(CheckpointError) as err:
        check_checkpoint_fits(_tiny(), str(path))
    message = str(err.value)
    assert message.startswith(f'{path}: does not fit the model')
    assert '1 missing (e.g. 1.running_var)' in message
    assert '1 unexpected (e.g. extra.weight)' in message
    assert '5 mis-shaped (e.g. 0.weight (4, 2) vs (3, 2) in the model' in message


def test_unwrapped_state_drops_only_a_leading_module_prefix():
    from custom_modules.engine.checkpoint import unwrapped_state
    state = unwrapped_state({'state_dict': {'module.a.w': 1, 'b.module.c': 2, 'd': 3}})
    assert state == {'a.w': 1, 'b.module.c': 2, 'd': 3}
    assert unwrapped_state({'module.x': 4}) == {'x': 4}  # a bare state dict


def test_shipped_safetensors_weights_load_as_a_checkpoint(tmp_path):
    """``load_from`` a shipped model's ``weights.safetensors`` (fine-tuning it): its
    half-precision tensors arrive as float32, nothing is unpickled; garbage is named."""
    from safetensors.torch import save_file
    state = {k: v.half() if v.is_floating_point() else v for k, v in _tiny().state_dict().items()}
    path = tmp_path / 'weights.safetensors'
    save_file(state, str(path))
    ckpt = mm_checkpoint.CheckpointLoader.load_checkpoint(str(path))  # load_from's path
    assert sorted(ckpt) == ['state_dict'] and ckpt['state_dict'].keys() == state.keys()
    for key, value in ckpt['state_dict'].items():
        assert value.dtype == (torch.float32 if state[key].is_floating_point() else state[key].dtype)
        assert torch.equal(value, state[key].to(value.dtype)), key
    net = _tiny()
    mm_checkpoint.load_checkpoint(net, str(path), strict=True)
    assert torch.equal(net.state_dict()['0.weight'], state['0.weight'].float())
    path.write_bytes(b'not a safetensors file')
    with pytest.raises(CheckpointError, match='weights.safetensors: not a loadable safetensors'):
        load_checkpoint_file(str(path))
