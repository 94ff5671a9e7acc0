"""Training speed of each config on this machine: seconds per iteration.

    python bench/bench_train.py CONFIG [CONFIG ...] [--iters 12] [--skip 2]
        [--load-from CKPT [--trust-pickle]]

Runs a few iterations of each config on its own training data (no
validation, no checkpoint, no pretrained weights) and reports the mean
iteration time after the first --skip iterations. ``--load-from`` starts every
config from a trained model's weights instead (e.g. a shipped model's
``weights.safetensors``): an untrained Mask R-CNN proposes few nuclei, so its
heads sample few positives and its step is cheaper than most of a real run's.
A missing config, training data or checkpoint, or --iters not above --skip + 1,
stops it with exit code 2.
"""
import argparse
import os.path as osp
import sys
import tempfile
import time
from typing import Optional

from mmengine.hooks import Hook
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from custom_modules.engine.checkpoint import trust_pickled_code
from custom_modules.engine.config_check import check_data_paths
from custom_modules.inference.model_zoo import load_config


class IterTimer(Hook):
    """Record wall time between training iterations."""

    def __init__(self):
        self.stamps = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.stamps.append(time.perf_counter())


def mean_interval(stamps, skip: int) -> float:
    """Mean seconds between the time stamps after the first ``skip``."""
    kept = stamps[skip:]
    return (kept[-1] - kept[0]) / (len(kept) - 1)


def bench_runner(cfg, iters: int, name: str, load_from: Optional[str] = None) -> Runner:
    """A runner of ``cfg`` for ``iters`` training iterations: no validation, checkpoint,
    logging or pretrained weights (``load_from``: these weights instead); its work folder
    is a new temporary one (kept: mmengine's global loggers point into it)."""
    cfg.merge_from_dict({'train_cfg.max_iters': iters, 'train_cfg.val_interval': 10 ** 9,
                         'default_hooks.checkpoint.interval': 10 ** 9,
                         'default_hooks.checkpoint.save_last': False,
                         'default_hooks.checkpoint.save_best': None,
                         'default_hooks.logger.interval': 10 ** 9,
                         'load_from': load_from})
    encoder = 'backbone' if 'backbone' in cfg.model else 'encoder'  # Mask R-CNN or U-Net
    if encoder in cfg.model:
        cfg.model[encoder].init_cfg = None
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.work_dir = tempfile.mkdtemp(prefix=name + '_')
    cfg.experiment_name = name
    return Runner.from_cfg(cfg)


def add_load_from_arguments(parser: argparse.ArgumentParser) -> None:
    """``--load-from CKPT`` and ``--trust-pickle`` (this tool's and profile_train's)."""
    parser.add_argument('--load-from', metavar='CKPT',
                        help='start from these weights (a trained model)')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='load a checkpoint that pickles more than tensors and data')


def checked_load_from(parser: argparse.ArgumentParser, args) -> Optional[str]:
    """``--load-from``'s file, refused with one line when missing; sets the pickle policy."""
    if args.load_from is not None and not osp.isfile(args.load_from):
        parser.error(f'--load-from {args.load_from}: no such checkpoint file')
    trust_pickled_code(args.trust_pickle)
    return args.load_from


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--iters', type=int, default=12)
    parser.add_argument('--skip', type=int, default=2)
    add_load_from_arguments(parser)
    args = parser.parse_args(argv)
    if args.skip < 0 or args.iters < args.skip + 2:
        parser.error('--iters must exceed --skip + 1 (two timed iterations at least), --skip >= 0')
    load_from = checked_load_from(parser, args)
    configs = []
    for path in args.configs:  # all checked before the first one runs
        try:
            configs.append((path, load_config(path)))
            check_data_paths(configs[-1][1], ('train_dataloader', ))
        except ValueError as err:
            parser.error(f'{path}: {err}' if not str(err).startswith(path) else str(err))
    for i, (path, cfg) in enumerate(configs):
        runner = bench_runner(cfg, args.iters, f'bench_train_{i}', load_from)
        timer = IterTimer()
        runner.register_hook(timer)
        runner.train()
        per_iter = mean_interval(timer.stamps, args.skip)
        batch = cfg.train_dataloader.batch_size
        print(f'{osp.basename(path)}: {per_iter:.2f} s/iteration ({1 / per_iter:.2f} it/s, '
              f'batch {batch}), mean of {len(timer.stamps) - args.skip - 1} iterations')


if __name__ == '__main__':
    main()
