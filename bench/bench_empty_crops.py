"""Share of training crops with no nucleus, from a config's train pipeline.

    python bench/bench_empty_crops.py [CONFIG] [--passes 3] [--seed 0] [--limit N]

Runs the config's train pipeline (without ``PackDetInputs``) over its
training images ``--passes`` times with a fixed seed and counts the samples
with no ground-truth instance right after ``InstanceSafeRandomCrop`` and at
the end of the pipeline (rotations can cut the last nucleus out): overall,
per stratum (image kind/size, as data_prep writes it) and as the mean over
strata (what StratumBalancedSampler draws). Needs the config's
training JSON (data_prep/prepare_dsb.py).
"""
import argparse
import copy
import time
from collections import defaultdict

import numpy as np
from mmengine.registry import init_default_scope

import custom_modules  # noqa: F401  (registers the project's modules)
from custom_modules.inference.model_zoo import load_config
from mmdet.registry import DATASETS, TRANSFORMS
from mmdet.utils import register_all_modules


def build_steps(pipeline):
    """Transforms of a pipeline config without ``PackDetInputs``."""
    return [(cfg['type'], TRANSFORMS.build(cfg)) for cfg in pipeline
            if cfg['type'] != 'PackDetInputs']


def run_sample(info: dict, steps) -> tuple:
    """(instances after the crop, instances at the end) of one pipeline run."""
    results, after_crop = info, None
    for name, transform in steps:
        results = transform(results)
        if name == 'InstanceSafeRandomCrop':
            after_crop = len(results['gt_masks'])
    end = len(results['gt_masks'])
    return end if after_crop is None else after_crop, end


def report(counts: dict) -> None:
    """Print empty shares per stratum (image kind/size) and overall."""
    print(f'{"stratum":<20}{"crops":>7}{"empty after crop":>20}{"empty at end":>16}'
          f'{"mean nuclei":>13}')
    strata = sorted(k for k in counts if k != 'all')
    for kind in strata + ['all']:
        c = np.asarray(counts[kind])
        print(f'{kind:<20}{len(c):>7}{(c[:, 0] == 0).mean():>20.2%}{(c[:, 1] == 0).mean():>16.2%}'
              f'{c[:, 1].mean():>13.1f}')
    # StratumBalancedSampler draws every stratum equally often: the mean over strata.
    shares = np.array([[(np.asarray(counts[k])[:, j] == 0).mean() for j in (0, 1)] for k in strata])
    print(f'{"stratum-balanced":<27}{shares[:, 0].mean():>20.2%}{shares[:, 1].mean():>16.2%}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config', nargs='?', default='configs/dsb_mrcnn_cpu.py')
    parser.add_argument('--passes', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--limit', type=int, default=None, help='first N images only')
    args = parser.parse_args(argv)
    register_all_modules(init_default_scope=False)
    init_default_scope('mmdet')
    cfg = load_config(args.config)  # fills the fields of configs/_base_
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    steps = build_steps(dataset_cfg.pop('pipeline'))
    dataset = DATASETS.build(dict(dataset_cfg, pipeline=[]))
    n = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    np.random.seed(args.seed)
    counts = defaultdict(list)
    t0 = time.perf_counter()
    for _ in range(args.passes):
        for i in range(n):
            info = dataset.get_data_info(i)
            pair = run_sample(info, steps)
            counts[info.get('stratum', 'all')].append(pair)
            counts['all'].append(pair)
    seconds = time.perf_counter() - t0
    print(f'{args.config}: {n} images x {args.passes} passes, seed {args.seed}, '
          f'{seconds / (n * args.passes):.3f} s/sample')
    report(counts)


if __name__ == '__main__':
    main()
