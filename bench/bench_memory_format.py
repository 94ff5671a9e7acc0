"""Training step in channels-last memory against today's contiguous layout, one run.

    python bench/bench_memory_format.py CONFIG [--steps 8] [--skip 2] [--rounds 2]

Builds the config's model (no pretrained weights) and optimizer, takes a few real
training batches from its loader once, and times ``model.train_step`` on the same
batches with the model in contiguous (NCHW, today) and channels-last (NHWC)
memory, alternating the two ``--rounds`` times so that a change of load hits
both. Each arm starts from the same weights, optimizer state and random seed, so
the script also prints how far the losses of the two layouts drift apart over the
steps (the same arithmetic in another order: float rounding, grown by training; in
a Mask R-CNN a rounding difference can also change which proposals are sampled).
A missing config or training data stops it with exit code 2.
"""
import argparse
import copy
import itertools
import os.path as osp
import sys
import time

import torch
from mmengine.runner import set_random_seed

BENCH = osp.dirname(osp.abspath(__file__))
sys.path[:0] = [osp.dirname(BENCH), BENCH]

from bench_train import bench_runner, mean_interval  # noqa: E402

from custom_modules.engine.config_check import check_data_paths  # noqa: E402
from custom_modules.inference.model_zoo import load_config  # noqa: E402


def timed_steps(model, optim_wrapper, batches, skip: int):
    """Seconds per step after ``skip`` warm-up steps, and the losses of every step."""
    losses, stamps = [], []
    for batch in batches:
        log_vars = model.train_step(batch, optim_wrapper)
        losses.append(float(log_vars['loss'].detach()))
        stamps.append(time.perf_counter())
    return mean_interval(stamps, skip), losses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config')
    parser.add_argument('--steps', type=int, default=8)
    parser.add_argument('--skip', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=2)
    args = parser.parse_args(argv)
    if args.skip < 0 or args.steps < args.skip + 2 or args.rounds < 1:
        parser.error('--steps must exceed --skip + 1, --skip >= 0, --rounds >= 1')
    try:
        cfg = load_config(args.config)
        check_data_paths(cfg, ('train_dataloader', ))
    except ValueError as err:
        parser.error(str(err) if str(err).startswith(args.config) else f'{args.config}: {err}')
    runner = bench_runner(cfg, args.steps, 'bench_memory_format')
    batches = []
    while len(batches) < args.steps:  # a small training set is taken again from its start
        more = list(itertools.islice(runner.train_dataloader, args.steps - len(batches)))
        if not more:
            parser.error(f'{args.config}: the training loader gives no batch')
        batches += more
    start_model = copy.deepcopy(runner.model.state_dict())
    optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    start_optim = copy.deepcopy(optim_wrapper.state_dict())
    print(f'{osp.basename(args.config)}: {args.steps} steps of batch '
          f'{cfg.train_dataloader.batch_size}, first {args.skip} not timed, '
          f'torch {torch.__version__}, {torch.get_num_threads()} threads')
    layouts = {'contiguous': torch.contiguous_format, 'channels_last': torch.channels_last}
    times = {name: [] for name in layouts}
    losses = {}
    for _ in range(args.rounds):
        for name, layout in layouts.items():
            runner.model.load_state_dict(start_model)
            runner.model.to(memory_format=layout)
            optim_wrapper.load_state_dict(copy.deepcopy(start_optim))  # no AdamW moments yet
            runner.model.train()
            set_random_seed(0)  # the same RoI sampling and dropout in both arms
            per_step, losses[name] = timed_steps(runner.model, optim_wrapper, batches, args.skip)
            times[name].append(per_step)
            print(f'  {name:14s} {per_step:.3f} s/step')
    base = min(times['contiguous'])
    best = min(times['channels_last'])
    drift = max(abs(a - b) for a, b in zip(losses['contiguous'], losses['channels_last']))
    print(f'best of {args.rounds}: contiguous {base:.3f} s/step, channels_last {best:.3f} '
          f's/step (speed {base / best:.2f}x of contiguous); largest loss difference over the '
          f'steps {drift:.2e} (losses {losses["contiguous"][0]:.4f} -> '
          f'{losses["contiguous"][-1]:.4f})')


if __name__ == '__main__':
    main()
