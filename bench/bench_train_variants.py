"""Training-step variants against today's step, the same batches in one run.

    python bench/bench_train_variants.py CONFIG [--variants channels_last compiled]
        [--steps 8] [--skip 2] [--rounds 2]

Builds the config's model (no pretrained weights) and optimizer, takes a few real
training batches from its loader once, and times ``model.train_step`` on the same
batches as today (``eager``: contiguous NCHW memory, eager PyTorch) and in each
variant: ``channels_last`` (the model in NHWC memory, oneDNN's preferred layout),
``compiled`` (the network's tensor part, the U-Net's ``_forward`` or the Mask
R-CNN's backbone and neck, through ``torch.compile``; its compilation happens in
the warm-up steps, which ``--skip`` must cover, and is reported), ``bf16`` (the
forward and loss under ``CPUBFloat16OptimWrapper``'s bfloat16 autocast, as training
with ``bf16`` on; ``eager`` and the other arms with it off, whatever the config says),
``unfused`` (AdamW and the gradient clipping one tensor at a time, torch's CPU default
and the recipes' optimizer step before ``fused``/``foreach``). The arms
alternate ``--rounds`` times so that a change of load hits all. Each arm starts
from the same weights, optimizer state and random seed, so the script also prints
how far each variant's losses drift from today's over the steps (the same
arithmetic in another order: float rounding, grown by training; in a Mask R-CNN a
rounding difference can also change which proposals are sampled).
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

VARIANTS = ('eager', 'channels_last', 'compiled', 'bf16', 'unfused')


def timed_steps(model, optim_wrapper, batches, skip: int):
    """Seconds per step after ``skip`` warm-up steps, the losses of every step and the
    seconds of the first step."""
    losses, stamps = [], [time.perf_counter()]
    for batch in batches:
        log_vars = model.train_step(batch, optim_wrapper)
        losses.append(float(log_vars['loss'].detach()))
        stamps.append(time.perf_counter())
    return mean_interval(stamps[1:], skip), losses, stamps[1] - stamps[0]


def network_part(model) -> str:
    """The name of the method holding the network's tensor-only part."""
    return '_forward' if hasattr(model, 'decoders') else 'extract_feat'  # U-Net, Mask R-CNN


def set_variant(model, optim_wrapper, name: str) -> None:
    """Put ``model`` and ``optim_wrapper`` (a ``CPUBFloat16OptimWrapper``) in the form of
    variant ``name`` (undoing any other first)."""
    part = network_part(model)
    model.__dict__.pop(part, None)  # back to the class's eager method
    optim_wrapper.bf16 = name == 'bf16'
    model.to(memory_format=torch.channels_last if name == 'channels_last'
             else torch.contiguous_format)
    if name == 'compiled':
        setattr(model, part, torch.compile(getattr(model, part)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config')
    parser.add_argument('--variants', nargs='+', default=['channels_last', 'compiled', 'bf16'],
                        choices=VARIANTS[1:])
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
    # Every arm steps through the training's bfloat16 wrapper, switched off but in the bf16
    # arm (the config's own may be it with bf16='auto': on, on some CPUs).
    cfg.optim_wrapper.type = 'CPUBFloat16OptimWrapper'
    cfg.optim_wrapper.bf16 = False
    runner = bench_runner(cfg, args.steps, 'bench_train_variants')
    batches = []
    while len(batches) < args.steps:  # a small training set is taken again from its start
        more = list(itertools.islice(runner.train_dataloader, args.steps - len(batches)))
        if not more:
            parser.error(f'{args.config}: the training loader gives no batch')
        batches += more
    start_model = copy.deepcopy(runner.model.state_dict())
    optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    start_optim = copy.deepcopy(optim_wrapper.state_dict())
    wrappers = {}  # arm -> its own optimizer wrapper and start state, where it differs
    if 'unfused' in args.variants:
        unfused = copy.deepcopy(cfg.optim_wrapper)
        unfused.optimizer.fused = False
        if unfused.get('clip_grad'):
            unfused.clip_grad.foreach = False
        unfused = runner.build_optim_wrapper(unfused)
        # its own state: param groups say fused=False
        wrappers['unfused'] = (unfused, copy.deepcopy(unfused.state_dict()))
    print(f'{osp.basename(args.config)}: {args.steps} steps of batch '
          f'{cfg.train_dataloader.batch_size}, first {args.skip} not timed, '
          f'torch {torch.__version__}, {torch.get_num_threads()} threads')
    arms = ['eager'] + list(dict.fromkeys(args.variants))
    times = {name: [] for name in arms}
    losses = {}
    for _ in range(args.rounds):
        for name in arms:
            runner.model.load_state_dict(start_model)
            wrapper, start = wrappers.get(name, (optim_wrapper, start_optim))
            set_variant(runner.model, wrapper, name)
            wrapper.load_state_dict(copy.deepcopy(start))  # no AdamW moments yet
            runner.model.train()
            set_random_seed(0)  # the same RoI sampling and dropout in every arm
            per_step, losses[name], first = timed_steps(runner.model, wrapper, batches,
                                                        args.skip)
            times[name].append(per_step)
            print(f'  {name:14s} {per_step:.3f} s/step (first step {first:.1f} s)')
    set_variant(runner.model, optim_wrapper, 'eager')
    base = min(times['eager'])
    print(f'best of {args.rounds}: eager (today) {base:.3f} s/step; losses '
          f'{losses["eager"][0]:.4f} -> {losses["eager"][-1]:.4f}')
    for name in arms[1:]:
        best = min(times[name])
        drift = max(abs(a - b) for a, b in zip(losses['eager'], losses[name]))
        print(f'  {name:14s} {best:.3f} s/step, speed {base / best:.2f}x of today; largest '
              f'loss difference over the steps {drift:.2e}')


if __name__ == '__main__':
    main()
