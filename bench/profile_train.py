"""Where a training iteration's time goes: data, each part of the model, backward, optimizer.

    python bench/profile_train.py CONFIG [--iters 8] [--skip 3] [--depth 2]
        [--load-from CKPT [--trust-pickle]]

Trains a few iterations of CONFIG as bench/bench_train.py does (no
validation, no checkpoint, random encoder weights, or ``--load-from`` a
trained model's: its heads then sample as a real run's do) and, over the
iterations after ``--skip``, reports per iteration:

- ``data wait``: time the loop waits for the next batch (the loader's workers
  prepare batches beside the training; 0 when they keep up), and
  ``pipeline``: the cost of preparing one batch in one process (its samples'
  transforms, timed separately after training), i.e. what the workers spend;
- ``forward <module>``: each sub-module's forward (to ``--depth`` levels;
  inclusive of its children; the rest of the model's ``loss`` is ``forward
  other``: target assignment, RoI sampling, the losses);
- ``backward``: all of it (per-module backward hooks break in-place
  activations); ``--ops N`` adds the torch profiler's N costliest operators
  by their own time, backward ones (``...Backward0``) included, which says
  what kind of work the backward is (the profiler slows the iterations a little);
- ``optimizer step`` and ``other`` (hooks, logging, the rest of the loop).
"""
import argparse
import collections
import os
import sys
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.hooks import Hook  # noqa: E402

from bench.bench_train import (add_load_from_arguments, bench_runner,  # noqa: E402
                               checked_load_from)
from custom_modules.inference.model_zoo import load_config  # noqa: E402


class Clock:
    """Accumulates seconds per named phase while ``active``."""

    def __init__(self) -> None:
        self.total: Dict[str, float] = collections.defaultdict(float)
        self.active = False

    def add(self, name: str, seconds: float) -> None:
        if self.active:
            self.total[name] += seconds


def module_hooks(model, clock: Clock, depth: int) -> None:
    """Time each sub-module's forward (inclusive), to ``depth`` levels below ``model``."""
    def attach(module, name: str) -> None:
        starts: List[float] = []
        module.register_forward_pre_hook(lambda m, a: starts.append(time.perf_counter()))
        module.register_forward_hook(
            lambda m, a, o: clock.add(f'forward {name}', time.perf_counter() - starts.pop()))

    def walk(module, prefix: str, level: int) -> None:
        for child_name, child in module.named_children():
            if child_name == 'data_preprocessor':
                continue
            attach(child, prefix + child_name)
            if level < depth:
                walk(child, f'{prefix}{child_name}.', level + 1)
    walk(model, '', 1)


class PhaseTimer(Hook):
    """Times data waits, the model's loss and its modules, backward and the optimizer step."""

    def __init__(self, clock: Clock, skip: int, depth: int) -> None:
        self.clock, self.skip, self.depth = clock, skip, depth
        self.iters = 0
        self.last_end: Optional[float] = None

    def before_train(self, runner) -> None:
        model = runner.model
        module_hooks(model, self.clock, self.depth)
        wrapper, clock = runner.optim_wrapper, self.clock
        for method, name in (('backward', 'backward (all)'), ('step', 'optimizer step'),
                             ('zero_grad', 'optimizer step')):
            original = getattr(wrapper, method)

            def timed(*args, _original=original, _name=name, **kwargs):
                start = time.perf_counter()
                out = _original(*args, **kwargs)
                clock.add(_name, time.perf_counter() - start)
                return out
            setattr(wrapper, method, timed)
        original_loss = model.loss

        def timed_loss(*args, **kwargs):
            start = time.perf_counter()
            out = original_loss(*args, **kwargs)
            clock.add('forward (all)', time.perf_counter() - start)
            return out
        model.loss = timed_loss
        original_pre = model.data_preprocessor.forward

        def timed_pre(*args, **kwargs):
            start = time.perf_counter()
            out = original_pre(*args, **kwargs)
            clock.add('data preprocessor', time.perf_counter() - start)
            return out
        model.data_preprocessor.forward = timed_pre

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        now = time.perf_counter()
        self.clock.active = self.iters >= self.skip
        if self.last_end is not None:
            self.clock.add('data wait', now - self.last_end)
        self.start = now

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        now = time.perf_counter()
        self.clock.add('iteration (without data wait)', now - self.start)
        self.last_end = now
        self.iters += 1


def pipeline_seconds(runner, batch: int, samples: int) -> float:
    """Seconds to prepare one batch in one process (mean over ``samples`` samples)."""
    dataset = runner.train_dataloader.dataset
    start = time.perf_counter()
    for i in range(samples):
        dataset[i % len(dataset)]
    return (time.perf_counter() - start) / samples * batch


def report(clock: Clock, iters: int, pipeline: float) -> None:
    """Print ms per iteration per phase and its share of the iteration."""
    total = {k: v / iters for k, v in clock.total.items()}
    iteration = total.pop('iteration (without data wait)') + total.get('data wait', 0.0)
    forward_all, backward_all = total.pop('forward (all)'), total.pop('backward (all)')
    rows = [('data wait', total.pop('data wait', 0.0)),
            ('data preprocessor', total.pop('data preprocessor', 0.0))]
    forward = {k[len('forward '):]: v for k, v in total.items() if k.startswith('forward ')}
    outermost = [name for name in forward  # timed modules inside no other timed module
                 if not any(name.startswith(other + '.') for other in forward)]
    rows += sorted((f'forward {k}', v) for k, v in forward.items())
    rows.append(('forward other (assignment, sampling, losses)',
                 forward_all - sum(forward[name] for name in outermost)))
    rows.append(('backward', backward_all))
    rows.append(('optimizer step', total.pop('optimizer step', 0.0)))
    counted = (rows[0][1] + rows[1][1] + forward_all + backward_all + rows[-1][1])
    rows.append(('other (hooks, loop)', iteration - counted))
    print(f'{"phase":48}{"ms/iter":>10}{"share":>8}   (children indented, inclusive)')
    for name, seconds in rows:
        indent = '  ' * name.count('.')
        print(f'{indent + name:48}{1000 * seconds:10.1f}{100 * seconds / iteration:7.1f}%')
    print(f'{"iteration":48}{1000 * iteration:10.1f}{100.0:7.1f}%')
    print(f'{"pipeline: one batch in one process":48}{1000 * pipeline:10.1f}'
          f'{100 * pipeline / iteration:7.1f}%  (done by the loader workers beside the model)')


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, default=8)
    parser.add_argument('--skip', type=int, default=3)
    parser.add_argument('--depth', type=int, default=2, help='module levels to time')
    parser.add_argument('--pipeline-samples', type=int, default=16)
    parser.add_argument('--ops', type=int, default=0, help='also the N costliest operators')
    add_load_from_arguments(parser)
    args = parser.parse_args(argv)
    if args.iters < args.skip + 1:
        parser.error('--iters must exceed --skip')
    load_from = checked_load_from(parser, args)
    cfg = load_config(args.config)
    runner = bench_runner(cfg, args.iters, 'profile_train', load_from)
    clock = Clock()
    runner.register_hook(PhaseTimer(clock, args.skip, args.depth))
    if args.ops:
        import torch
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            runner.train()
    else:
        runner.train()
    pipeline = pipeline_seconds(runner, cfg.train_dataloader.batch_size, args.pipeline_samples)
    print(f'{os.path.basename(args.config)}: {args.iters - args.skip} iterations after '
          f'{args.skip}, batch {cfg.train_dataloader.batch_size}')
    report(clock, args.iters - args.skip, pipeline)
    if args.ops:
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=args.ops))


if __name__ == '__main__':
    main()
