"""Turn a training checkpoint into a model for inference (MMDetection's publish_model).

    python tools/publish_model.py CKPT CONFIG OUT_DIR [--half]

Writes ``OUT_DIR/weights.pth`` (the state dict only: no optimizer, no message
hub; floats in half precision with --half, loaded back as float32) and
``OUT_DIR/config.py`` (CONFIG, whole: the config that trained it, with its
bases merged in), both or neither. The checkpoint must fit the config's model.
"""
import argparse
import hashlib
import io
import os
import sys

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmdet.registry import MODELS

import custom_modules  # noqa: F401
from custom_modules.atomic import check_can_write, write_all_or_nothing
from custom_modules.checkpoint import CheckpointError, check_checkpoint_fits


def inference_state(ckpt: dict, half: bool) -> dict:
    """The weights alone; floating tensors in half precision when asked."""
    state = ckpt.get('state_dict', ckpt)
    return {k[len('module.'):] if k.startswith('module.') else k:
            (v.half() if half and v.is_floating_point() else v) for k, v in state.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', help='checkpoint written by tools/train.py')
    parser.add_argument('config', help='the config that trained it (the copy in its work dir '
                        'has every base merged in)')
    parser.add_argument('out_dir', help='folder for weights.pth and config.py')
    parser.add_argument('--half', action='store_true',
                        help='store floats in half precision (check the score: BENCHMARKS.md)')
    args = parser.parse_args()
    weights, config = (os.path.join(args.out_dir, n) for n in ('weights.pth', 'config.py'))
    try:
        check_can_write([weights, config])
        cfg = Config.fromfile(args.config)
        init_default_scope('mmdet')
        ckpt = check_checkpoint_fits(MODELS.build(cfg.model), args.checkpoint)
    except (OSError, CheckpointError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    meta = dict(source=os.path.basename(args.checkpoint), half=args.half,
                iter=ckpt.get('meta', {}).get('iter'))
    buffer = io.BytesIO()
    torch.save(dict(state_dict=inference_state(ckpt, args.half), meta=meta), buffer)
    data = buffer.getvalue()
    write_all_or_nothing({weights: data, config: cfg.pretty_text})
    print(f'wrote {weights} ({len(data) / 2 ** 20:.1f} MiB, sha256 '
          f'{hashlib.sha256(data).hexdigest()[:8]}) and {config}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
