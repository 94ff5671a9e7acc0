"""Inputs and outputs of threshold tuning: grids, the raw cache file, the tuned config.

The tuned config inherits the model's config (``_base_``) and sets the
winning values where the model reads them:

- Mask R-CNN: ``model.test_cfg.rcnn`` ``score_thr`` and ``mask_thr_binary``
  (one number, or a list of one per class) and ``max_per_img``;
- U-Net: ``model.decode`` ``nucleus_thr``, ``marker_thr`` (``edge_thr``);
- both: ``postprocess`` ``min_area`` and ``dilation_radius`` (the TTA
  model's when it has its own), ``tta_model.vote_thr`` (TTA by consensus).
"""
import json
import os
import pickle
from typing import Dict, List, Optional, Sequence, Tuple

from custom_modules.engine.config_check import dataset_path
from custom_modules.io.atomic import write_atomic
from custom_modules.io.safe_pickle import load_pickle
from custom_modules.tuning.tuner import CACHE_VERSION, DEFAULT_GRIDS, INTS, Settings, UNIT


def validation_split(cfg) -> Tuple[str, str, str]:
    """``(JSON, image folder, description)`` of the config's ``val_dataloader``.

    Raises:
        ValueError: a JSON without ground truth (images-only: a test set?).
    """
    dataset = cfg.val_dataloader.dataset
    root = dataset.get('data_root', None) or ''
    ann_file = dataset_path(dataset, dataset.ann_file)
    img_dir = dataset_path(dataset, (dataset.get('data_prefix', None) or {}).get('img')) or root
    with open(ann_file) as f:
        coco = json.load(f)
    if 'annotations' not in coco or not coco.get('images'):
        raise ValueError(f'{ann_file}: no ground truth (an images-only JSON: a test set?); '
                         'tune on a labelled validation split (val_dataloader)')
    where = f"val_dataloader (fold {cfg.get('fold', '?')}): {os.path.abspath(ann_file)}"
    return ann_file, img_dir, where


def metric_filter(cfg) -> Tuple[float, int]:
    """``(score_thr, min_area)`` of the config's test metric (DSBMetric), which drops those."""
    metric = cfg.get('test_evaluator', None)
    if not isinstance(metric, dict) or metric.get('type') != 'DSBMetric':
        return 0.0, 0
    return metric.get('score_thr', 0.0), metric.get('min_area', 0)


def parse_grids(specs: Optional[Sequence[str]], start: Settings) -> Dict[str, tuple]:
    """Default grids of the settings in ``start``, replaced by ``KEY=V1,V2,...`` specs.

    Raises:
        ValueError: an unknown key, a value that is no number, or out of range.
    """
    grids = {k: tuple(DEFAULT_GRIDS[k]) for k in start}
    for spec in specs or ():
        key, sep, text = spec.partition('=')
        if not sep or key not in grids:
            raise ValueError(f'--grid {spec}: expected KEY=V1,V2,... with KEY one of '
                             f'{", ".join(grids)}')
        try:
            values = tuple(int(v) if key in INTS else float(v) for v in text.split(',') if v)
        except ValueError:
            raise ValueError(f'--grid {spec}: {"integers" if key in INTS else "numbers"} '
                             'separated by commas expected') from None
        bad = [v for v in values if (key in UNIT and not 0 < v <= 1) or v < 0]
        if bad or not values:
            raise ValueError(f'--grid {spec}: {key} values must be '
                             f'{"in (0, 1]" if key in UNIT else ">= 0"}, at least one')
        grids[key] = values
    return grids


def source_of(config: str, checkpoint: str, tta: bool, ann_file: str, img_dir: str) -> dict:
    """What the raw predictions depend on, to tell a stale cache file."""
    stat = os.stat(checkpoint)
    return dict(config=os.path.abspath(config), checkpoint=os.path.abspath(checkpoint),
                checkpoint_bytes=stat.st_size, checkpoint_mtime_ns=stat.st_mtime_ns, tta=tta,
                ann_file=os.path.abspath(ann_file), img_dir=os.path.abspath(img_dir or '.'))


# What a raw cache pickles besides numbers, strings and numpy arrays.
CACHE_TYPES = (('custom_modules.models.instances', 'SoftInstances'), )


def load_cache(path: str, source: dict, trust: bool = False) -> dict:
    """A raw cache written by :func:`save_cache` for the same ``source``.

    Read with a restricted unpickler (:data:`CACHE_TYPES` and data) unless ``trust``.

    Raises:
        ValueError: not a cache of this version, one made from other inputs,
            or one that pickles other types (``UnsafePickleError``).
    """
    try:
        cache = load_pickle(path, trust=trust, extra=CACHE_TYPES)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
        raise ValueError(f'--raw-cache {path}: cannot read it ({err})') from None
    if not isinstance(cache, dict) or cache.get('version') != CACHE_VERSION:
        raise ValueError(f'--raw-cache {path}: not a raw cache of this version '
                         f'({CACHE_VERSION}) of tools/tune_thresholds.py')
    diff = [k for k in source if cache['source'].get(k) != source[k]]
    if diff:
        raise ValueError(f'--raw-cache {path} was made with another {", ".join(diff)} '
                         f'({", ".join(str(cache["source"].get(k)) for k in diff)}): '
                         'give a new file, or remove it to predict again')
    return cache


def save_cache(path: str, cache: dict) -> None:
    """Write the cache atomically (pickle)."""
    write_atomic(path, pickle.dumps(cache, protocol=pickle.HIGHEST_PROTOCOL))


def _number(value):
    value = value.item() if hasattr(value, 'item') else value
    return round(value, 6) if isinstance(value, float) else value


def _per_class(values: Sequence[float]):
    values = [_number(float(v)) for v in values]
    return values[0] if len(set(values)) == 1 else values


def overrides(family: str, s: Settings, tta: Optional[dict]) -> dict:
    """The tuned settings as nested config dicts (``{'model': {...}, ...}``)."""
    out: dict = {}
    if family == 'mask_rcnn':
        out['model'] = dict(test_cfg=dict(rcnn=dict(
            score_thr=_per_class(s['score_thr']), mask_thr_binary=_per_class(s['mask_thr']),
            max_per_img=int(s['max_per_img']))))
    else:
        out['model'] = dict(decode={k: _number(float(s[k])) for k in (
            'nucleus_thr', 'marker_thr', 'edge_thr') if k in s})
    post = dict(min_area=int(s['min_area']), dilation_radius=int(s['dilation']))
    if tta is not None and tta['has_post']:
        out['tta_model'] = dict(postprocess=post)
    else:
        out['model']['postprocess'] = post
    if 'vote_thr' in s:
        out.setdefault('tta_model', {})['vote_thr'] = _number(float(s['vote_thr']))
    return out


def nest(options: Dict[str, object]) -> dict:
    """``{'a.b.c': v}`` as ``{'a': {'b': {'c': v}}}``."""
    out: dict = {}
    for key, value in options.items():
        node = out
        *parents, last = key.split('.')
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def flatten(nested: dict, prefix: str = '') -> Dict[str, object]:
    """``{'a': {'b': {'c': v}}}`` as ``{'a.b.c': v}`` (the inverse of :func:`nest`)."""
    out: Dict[str, object] = {}
    for key, value in nested.items():
        if isinstance(value, dict):
            out.update(flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def deep_merge(base: dict, extra: dict) -> dict:
    """``extra`` merged into a copy of ``base`` (dicts recursively)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def py(value) -> str:
    """A Python literal of nested dicts, lists and numbers in the configs' style."""
    if isinstance(value, dict):
        if all(isinstance(k, str) and k.isidentifier() for k in value):
            return 'dict(' + ', '.join(f'{k}={py(v)}' for k, v in value.items()) + ')'
        return '{' + ', '.join(f'{k!r}: {py(v)}' for k, v in value.items()) + '}'
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(py(v) for v in value) + ']'
    return repr(_number(value))


def write_tuned_config(path: str, config: str, family: str, best: Settings,
                       tta: Optional[dict], cfg_options: Optional[dict],
                       comments: List[str]) -> None:
    """Write the tuned config: the winners, over the model options of ``--cfg-options``.

    Options of other keys (data paths) are only named in a comment.
    """
    cfg_options = cfg_options or {}
    model = {k: v for k, v in cfg_options.items()
             if k.split('.')[0] in ('model', 'tta_model', 'tile')}
    other = [f'{k}={v}' for k, v in cfg_options.items() if k not in model]
    comments = comments + (['Tuned with --cfg-options ' + ' '.join(other)] if other else [])
    settings = deep_merge(nest(model), overrides(family, best, tta))
    write_atomic(path, tuned_config_text(config, path, settings, comments))


def tuned_config_text(config: str, out_path: str, settings: dict, comments: List[str]) -> str:
    """The tuned config: comments, ``_base_`` (relative to ``out_path`` when both lie
    under the working directory, else absolute), the settings."""
    config, out_path, cwd = os.path.abspath(config), os.path.abspath(out_path), os.getcwd()
    inside = all(os.path.commonpath([p, cwd]) == cwd for p in (config, out_path))
    base = os.path.relpath(config, os.path.dirname(out_path)) if inside else config
    lines = [f'# {c}' for c in comments] + [f'_base_ = {base!r}', '']
    for key, value in settings.items():
        if isinstance(value, dict):
            inner = ',\n'.join(f'    {k}={py(v)}' for k, v in value.items())
            lines.append(f'{key} = dict(\n{inner})')
        else:
            lines.append(f'{key} = {py(value)}')
    return '\n'.join(lines) + '\n'
