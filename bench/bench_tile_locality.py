"""Why a U-Net tile's probabilities differ from the whole image's.

    python bench/bench_tile_locality.py IMAGE [--config C] [--checkpoint CKPT]
                                        [--tile 512] [--at Y,X ...]

For each crop (``--at``: its top-left corner), compares the crop's nucleus,
contour and marker probabilities with the whole image's on the crop's interior
(a quarter of the tile from every edge, beyond the border's padding), twice:
with each GroupNorm layer normalising by the crop's own statistics (as the
model runs), and by the statistics it computed on the whole image. Without a
checkpoint the network keeps its random initialisation, which is enough to see
the mechanism. A crop whose corner is off the encoder's stride grid also
differs with the whole image's statistics: tiles start on that grid
(``tiling.tile_starts(..., align)``).
"""
import argparse

import numpy as np
import torch
from mmengine.registry import init_default_scope
from mmdet.registry import MODELS

import custom_modules  # noqa: F401
from custom_modules.data.datasets import config_input_mode
from custom_modules.data.image_io import ImageReadError, read_image_file
from custom_modules.data.intensity import to_model_input
from custom_modules.inference.builder import load_weights
from custom_modules.inference.model_zoo import load_config


class GroupNormStatistics:
    """Records each GroupNorm's per-group statistics, or replays recorded ones."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.mode, self.stats = 'record', {}
        self.layers = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
        for layer in self.layers:
            layer.register_forward_hook(self.hook)

    def hook(self, layer, inputs, output):
        x = inputs[0]
        groups = x.reshape(x.shape[0], layer.num_groups, -1)
        if self.mode == 'record':
            self.stats[id(layer)] = (groups.mean(-1, keepdim=True),
                                     groups.var(-1, unbiased=False, keepdim=True))
            return None
        if self.mode == 'own':
            return None
        mean, var = self.stats[id(layer)]
        y = ((groups - mean) / torch.sqrt(var + layer.eps)).reshape_as(x)
        return y * layer.weight.view(1, -1, 1, 1) + layer.bias.view(1, -1, 1, 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image')
    parser.add_argument('--config', default='configs/dsb_unet_cpu.py')
    parser.add_argument('--checkpoint', help='trained weights (default: random initialisation)')
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--at', nargs='+', default=['0,0'], help='crop corners Y,X')
    args = parser.parse_args(argv)
    try:  # bad input ends here, before the model is built
        corners = [tuple(int(v) for v in corner.split(',')) for corner in args.at]
    except ValueError:
        corners = []
    if not corners or any(len(c) != 2 for c in corners):
        parser.error(f'--at takes corners as Y,X, got {args.at}')
    try:
        raw = read_image_file(args.image)
    except ImageReadError as err:
        parser.error(str(err))
    cfg = load_config(args.config)  # fills the fields of configs/_base_
    cfg.model.encoder.init_cfg = None
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    if args.checkpoint:
        load_weights(model, args.checkpoint)
    stats = GroupNormStatistics(model)
    img = to_model_input(raw, config_input_mode(cfg))
    t, q = args.tile, args.tile // 4
    print(f'{args.image}: {img.shape[0]}x{img.shape[1]}, {len(stats.layers)} GroupNorm '
          f'layers, stride grid {cfg.model.data_preprocessor.pad_size_divisor}')
    for y, x in corners:
        stats.mode = 'record'
        whole = model.predict_probs(img)[:, y:y + t, x:x + t][:, q:t - q, q:t - q]
        crop = np.ascontiguousarray(img[y:y + t, x:x + t])
        for mode in ('own', 'whole'):
            stats.mode = mode
            diff = np.abs(model.predict_probs(crop)[:, q:t - q, q:t - q] - whole)
            print(f'crop at ({y},{x}), GroupNorm statistics of the {mode + ":":6s} max |diff| '
                  f'{diff.max():.4f}, pixels > 0.1: {(diff > 0.1).mean():.2%}, mean {diff.mean():.4f}')


if __name__ == '__main__':
    main()
