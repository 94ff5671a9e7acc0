"""Tune post-processing thresholds on the validation set from one run of the model.

    python tools/tune_thresholds.py CONFIG CHECKPOINT [--tta | --tta-views NAME] [--out-config PATH]
        [--out-thresholds thresholds.json] [--raw-cache FILE.pkl] [--raw-score-thr T] [--grid KEY=V1,V2,...] [--rounds N]
        [--float32] [--cfg-options KEY=VALUE ...]

The model predicts the config's val_dataloader (fold ``fold``) once; its raw
predictions are kept (``--raw-cache`` saves them for a rerun with other grids)
and the settings are searched on them, one at a time (coordinate descent):
Mask R-CNN score and mask thresholds per class, max_per_img; U-Net nucleus,
marker (and edge) thresholds; min_area, dilation, and with --tta the vote
threshold (of the views tested: ``--tta-views NAME`` tunes the vote of the
config's set ``tta_views_NAME``). It prints what it tried, and writes a config that inherits CONFIG
with the winners: ``tools/test.py TUNED CHECKPOINT [--tta | --tta-views NAME]`` scores what this
tool printed (a score on the tuning split itself is optimistic). With
--out-thresholds it also writes the winners as a model folder's thresholds.json
(``tools/publish_model.py --thresholds``; custom_modules/inference/model_zoo.py). A set without
ground truth (an images-only JSON, a test set) is refused. See
custom_modules/tuning/tuner.py.
"""
import argparse
import os.path as osp
import sys

import numpy as np
from mmengine.config import DictAction

from custom_modules.engine.checkpoint import CheckpointError, trust_pickled_code
from custom_modules.engine.config_check import check_data_paths
from custom_modules.inference.builder import (add_tta_arguments, is_ensemble, load_weights,
                                              predictor_cfg)
from custom_modules.inference.model_zoo import load_config, thresholds_json
from custom_modules.io.atomic import check_can_write, write_atomic
from custom_modules.structures.predictor import innermost
from custom_modules.tuning.tuner import (CACHE_VERSION, Scorer, capture, coordinate_descent,
                                         model_family, model_settings, trials_table, tta_spec)
from custom_modules.tuning.tuner_io import (flatten, load_cache, metric_filter, overrides,
                                            parse_grids, save_cache, source_of, validation_split,
                                            write_tuned_config)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Tune post-processing thresholds on the '
                                     'validation set')
    parser.add_argument('config', help='the model config (its val_dataloader is tuned on)')
    parser.add_argument('checkpoint', help='checkpoint file')
    add_tta_arguments(parser)
    parser.add_argument('--out-config', help='tuned config to write (default: '
                        'work_dirs/<config>/<config>_tuned.py)')
    parser.add_argument('--out-thresholds', help="the winners as a model folder's "
                        'thresholds.json (tools/publish_model.py --thresholds)')
    parser.add_argument('--raw-cache', help='.pkl of the raw predictions: read when it exists '
                        '(same config, checkpoint, --tta and data), else written')
    parser.add_argument('--raw-score-thr', type=float, help='cache Mask R-CNN detections '
                        'scoring above this (default: the lowest score_thr to try); higher: a '
                        'smaller cache, fewer values tried')
    parser.add_argument('--grid', nargs='+', default=[], metavar='KEY=V1,V2',
                        help='values to try, e.g. score_thr=0.3,0.5,0.7 min_area=0,10')
    parser.add_argument('--rounds', type=int, default=3, help='coordinate-descent rounds')
    parser.add_argument('--float32', action='store_true', help='keep U-Net probabilities as '
                        'float32, not float16 (twice the memory; bit-exact decoding)')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='read a --raw-cache or checkpoint that pickles more than data '
                        '(unpickling it can run code: only for files you trust)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. val_dataloader.dataset.ann_file=...')
    return parser.parse_args(argv), parser


def setup(args, parser):
    """The config, the built predictor and the validation split; errors as usage errors."""
    try:
        cfg = load_config(args.config, args.cfg_options)
        if is_ensemble(cfg):
            raise ValueError(f"{args.config} is an ensemble: tune each member's config")
        if not osp.isfile(args.checkpoint):
            raise ValueError(f'{args.checkpoint}: no such checkpoint file')
        if args.rounds < 1:
            raise ValueError('--rounds must be at least 1')
        check_data_paths(cfg, ('val_dataloader', ))
        split = validation_split(cfg)
        name = osp.splitext(osp.basename(args.config))[0]
        args.out_config = args.out_config or osp.join(
            cfg.get('work_dir', None) or osp.join('work_dirs', name), f'{name}_tuned.py')
        if not args.out_config.endswith('.py'):
            raise ValueError(f'--out-config {args.out_config}: a config is a .py file')
        if args.out_thresholds and not args.out_thresholds.endswith('.json'):
            raise ValueError(f'--out-thresholds {args.out_thresholds}: a .json file')
        check_can_write([args.out_config] + [p for p in (args.raw_cache, args.out_thresholds)
                                             if p])
        from mmdet.registry import MODELS
        from mmengine.registry import init_default_scope
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        model = MODELS.build(predictor_cfg(cfg, tta=args.tta, tile=0))
        model_family(model)
    except (ValueError, OSError, KeyError) as err:
        parser.error(str(err.args[0]) if isinstance(err, KeyError) else str(err))
    return cfg, model.eval(), split


def raw_predictions(args, parser, cfg, model, split, grids, start):
    """The raw cache: read from --raw-cache, or made by running the model once."""
    ann_file, img_dir, where = split
    tta = tta_spec(model)
    views = tta and repr({k: tta[k] for k in ('views', 'merge', 'match_iou', 'score_thr')})
    source = source_of(args.config, args.checkpoint, views, ann_file, img_dir)
    if args.raw_cache and osp.isfile(args.raw_cache):
        try:
            return load_cache(args.raw_cache, source, trust=args.trust_pickle)
        except ValueError as err:
            parser.error(str(err))
    raw_thr = args.raw_score_thr if args.raw_score_thr is not None else min(
        list(grids.get('score_thr', ())) + list(start.get('score_thr', (0.05, ))))
    load_weights(model, args.checkpoint)
    from mmdet.registry import DATASETS
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    print(f'predicting {len(dataset)} images of {where} once'
          + (f" ({len(tta['views'])} TTA views)" if tta else ''), flush=True)
    images = capture(model, dataset, raw_thr, np.float32 if args.float32 else np.float16,
                     progress=lambda m: print(m, flush=True))
    cache = dict(version=CACHE_VERSION, family=model_family(model), source=source, tta=tta,
                 raw_score_thr=raw_thr, split=where, images=images)
    if args.raw_cache:
        save_cache(args.raw_cache, cache)
        print(f'raw predictions saved to {args.raw_cache}')
    return cache


def main(argv=None):
    args, parser = parse_args(argv)
    trust_pickled_code(args.trust_pickle)
    cfg, model, split = setup(args, parser)
    family, tta, start = model_family(model), tta_spec(model), model_settings(model)
    try:
        grids = parse_grids(args.grid, start)
    except ValueError as err:
        parser.error(str(err))
    try:
        cache = raw_predictions(args, parser, cfg, model, split, grids, start)
    except (CheckpointError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if 'score_thr' in grids:
        low = cache['raw_score_thr']
        if min(start['score_thr']) < low:
            parser.error(f"the raw predictions hold detections scoring above {low}; the "
                         f"config's score_thr {min(start['score_thr'])} is lower: lower "
                         '--raw-score-thr, or give a new --raw-cache file')
        if any(v < low for v in grids['score_thr']):
            print(f'warning: score_thr values under {low} skipped (the cache holds none below)',
                  file=sys.stderr)
        grids['score_thr'] = tuple(v for v in grids['score_thr'] if v >= low)
    tile_above = (cfg.get('tile', None) or {}).get('tile_above', 0)
    big = sum(max(im['gt'].shape) > tile_above for im in cache['images']) if tile_above else 0
    if big:
        print(f'warning: {big} images exceed tile.tile_above={tile_above}: tools/test.py tiles '
              'them, the tuner scored them whole', file=sys.stderr)

    scorer = Scorer(cache, innermost(model), metric_filter(cfg))
    best, best_score, trials = coordinate_descent(scorer.score, start, grids, args.rounds,
                                                  progress=lambda m: print(m, flush=True))
    base_score, where, n = trials[0][1], split[2], len(cache['images'])
    print(trials_table(trials, best))
    print(f'tuned on {where}, {n} images')
    print(f"tuned score: {best_score:.6f} (the config's own settings: {base_score:.6f}, "
          f'gain {best_score - base_score:+.6f})')
    tta_note = f"{len(tta['views'])} TTA views" if tta else 'TTA off'
    write_tuned_config(args.out_config, args.config, family, best, tta, args.cfg_options, [
        f'Thresholds tuned by tools/tune_thresholds.py on {where}',
        (f'({n} images; checkpoint {osp.abspath(args.checkpoint)}; {tta_note}). DSB score '
         f"there: {best_score:.4f}; the config's own settings: {base_score:.4f} "
         f'(gain {best_score - base_score:+.4f}).'),
        'A score on that same split is optimistic: these values were chosen on it.'])
    check_written(args, best)
    flag = '' if not tta else ' --tta' if args.tta is True else f' --tta-views {args.tta}'
    print(f'tuned config written to {args.out_config}: tools/test.py {args.out_config} '
          f'{args.checkpoint}{flag}')
    if args.out_thresholds:
        write_atomic(args.out_thresholds, thresholds_json(
            flatten(overrides(family, best, tta)),
            f'{where} ({n} images), {tta_note}: {best_score:.4f} '
            f"(the config's own settings {base_score:.4f}); tools/tune_thresholds.py"))
        print(f'thresholds written to {args.out_thresholds}')
    return 0


def check_written(args, best) -> None:
    """The written config must build a predictor with exactly the winning settings."""
    from mmdet.registry import MODELS
    cfg = load_config(args.out_config)
    got = model_settings(MODELS.build(predictor_cfg(cfg, tta=args.tta, tile=0)))
    if got != best:
        raise RuntimeError(f'{args.out_config} builds {got}, expected {best}')


if __name__ == '__main__':
    sys.exit(main())
