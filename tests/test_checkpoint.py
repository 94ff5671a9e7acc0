"""Checkpoint schemes: torchvision:// without torchvision, clear offline errors."""
import os.path as osp
from urllib.error import URLError

import pytest
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner import checkpoint as mm_checkpoint

from conftest import REPO
from custom_modules.checkpoint import load_torchvision, torchvision_url


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
