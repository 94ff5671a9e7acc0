"""CPU bfloat16 training: the optimizer wrapper's autocast and the Mask R-CNN's float32 heads."""
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS, OPTIM_WRAPPERS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.structures import InstanceData

import custom_modules  # noqa: F401
from conftest import REPO, load_tool
from custom_modules.engine.mixed_precision import cpu_has_native_bf16, resolve_bf16


def test_bf16_setting_resolves_and_refuses_other_values():
    assert resolve_bf16(True) is True and resolve_bf16(False) is False
    assert resolve_bf16('auto') is cpu_has_native_bf16()
    for bad in ('yes', 1, None):
        with pytest.raises(ValueError, match='bf16 must be'):
            resolve_bf16(bad)


@pytest.mark.parametrize('bf16', [True, False])
def test_wrapper_runs_the_forward_under_cpu_autocast_as_set(bf16):
    net = torch.nn.Linear(4, 2)
    wrapper = OPTIM_WRAPPERS.build(dict(type='CPUBFloat16OptimWrapper', bf16=bf16,
                                        optimizer=torch.optim.AdamW(net.parameters())))
    with wrapper.optim_context(net):
        assert torch.is_autocast_enabled('cpu') is bf16
        out = net(torch.ones(1, 4))
    assert out.dtype == (torch.bfloat16 if bf16 else torch.float32)
    assert not torch.is_autocast_enabled('cpu')
    with pytest.raises(TypeError):  # a misspelt key is an error, not swallowed
        OPTIM_WRAPPERS.build(dict(type='CPUBFloat16OptimWrapper', bf_16=True,
                                  optimizer=torch.optim.AdamW(net.parameters())))


def test_mask_rcnn_losses_under_bf16_autocast_keep_float32_heads():
    model = MODELS.build(Config.fromfile(f'{REPO}/configs/dsb_mrcnn_smoke.py').model)
    mask = np.zeros((1, 64, 64), np.uint8)
    mask[0, 12:30, 14:34] = 1
    sample = DetDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                         pad_shape=(64, 64), batch_input_shape=(64, 64),
                                         scale_factor=(1.0, 1.0)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[14.0, 12.0, 34.0, 30.0]]),
                                       labels=torch.tensor([0]), masks=BitmapMasks(mask, 64, 64))
    torch.manual_seed(0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(torch.randn(1, 3, 64, 64), [sample])
    assert 'extract_feat' not in model.__dict__  # the class's method again
    for name, value in losses.items():
        for v in value if isinstance(value, list) else [value]:
            if name.startswith('loss'):
                assert v.dtype == torch.float32 and torch.isfinite(v), name


def test_train_amp_takes_cpu_bf16_where_native_and_refuses_elsewhere(monkeypatch, capsys):
    import custom_modules.engine.mixed_precision as mixed_precision
    train = load_tool('tools/train.py')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(mixed_precision, 'cpu_has_native_bf16', lambda: False)
    with pytest.raises(SystemExit):
        train.main([f'{REPO}/configs/dsb_unet_smoke.py', '--amp'])
    assert 'bfloat16 instructions (AVX512-BF16 or AMX)' in capsys.readouterr().err

    built = []

    class Stop(Exception):
        pass

    class FakeRunner:
        @staticmethod
        def from_cfg(cfg):
            built.append(cfg)
            raise Stop

    monkeypatch.setattr(mixed_precision, 'cpu_has_native_bf16', lambda: True)
    monkeypatch.setattr(train, 'check_data_paths', lambda cfg, keys: None)
    monkeypatch.setattr(train, 'Runner', FakeRunner)
    with pytest.raises(Stop):
        train.main([f'{REPO}/configs/dsb_unet_smoke.py', '--amp'])
    assert built[0].optim_wrapper.type == 'CPUBFloat16OptimWrapper'
    assert built[0].optim_wrapper.bf16 is True
