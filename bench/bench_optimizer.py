"""The optimizer step of a config's model: AdamW and clipping, plain against foreach/fused.

    python bench/bench_optimizer.py CONFIG [--steps 12]

Builds the model (random weights), gives its trainable parameters the same
random gradients in each variant and times ``clip_grad_norm_`` + ``step`` +
``zero_grad`` (the median after two warm-up steps). Prints ms per step, the
ratio to the plain variant (torch's CPU default: one tensor at a time) and
the largest parameter difference from it after all steps.
"""
import argparse
import os
import sys
import time
from typing import List, Optional

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from custom_modules.inference.model_zoo import load_config  # noqa: E402

VARIANTS = (('plain', {}, None), ('foreach', dict(foreach=True), True),
            ('fused', dict(fused=True), True))


def trainable_parameters(config: str) -> List[torch.Tensor]:
    """The config's model's trainable parameters (no pretrained weights loaded)."""
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    cfg = load_config(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    for key in ('encoder', 'backbone'):
        if key in cfg.model:
            cfg.model[key].init_cfg = None
    return [p.detach() for p in MODELS.build(cfg.model).parameters() if p.requires_grad]


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--steps', type=int, default=12)
    args = parser.parse_args(argv)
    params0 = trainable_parameters(args.config)
    print(f'{len(params0)} tensors, {sum(p.numel() for p in params0) / 1e6:.2f} M values')
    generator = torch.Generator().manual_seed(0)
    grads = [[torch.randn(p.shape, generator=generator) * 0.01 for p in params0]
             for _ in range(3)]
    final, base = {}, None
    for name, options, foreach in VARIANTS:
        params = [p.clone().requires_grad_() for p in params0]
        optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05, **options)
        times = []
        for step in range(args.steps):
            for p, g in zip(params, grads[step % 3]):
                p.grad = g.clone()
            start = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(params, 5.0, 2, foreach=foreach)
            optimizer.step()
            optimizer.zero_grad()
            times.append(time.perf_counter() - start)
        ms = 1000 * sorted(times[2:])[len(times[2:]) // 2]
        base = base or ms
        final[name] = params
        diff = max((a - b).abs().max().item() for a, b in zip(final['plain'], params))
        print(f'{name:8}{ms:9.1f} ms/step{ms / base:7.2f}x   max |param - plain| {diff:.2e}')


if __name__ == '__main__':
    main()
