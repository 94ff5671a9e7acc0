"""Shipped models: one folder each under ``model_zoo/``, loaded without unpickling anything.

A model folder ``model_zoo/<name>/`` holds:

- ``weights.safetensors``: the state dict (safetensors: tensors only, no code);
  an ensemble's holds no tensors (its members' weights are in their folders);
- ``config.py``: a short config that inherits the repo config that trained it;
- ``thresholds.json``: the post-processing settings, applied over the config
  whenever that ``config.py`` is loaded (:func:`load_config` calls
  :func:`prepare_config`);
- ``MODEL_CARD.md`` (data, training, scores, weaknesses) and ``metrics.json``
  (the figures ``tools/predict.py --list-models`` prints).

The shipped models are the folders holding ``weights.safetensors`` and
``config.py``. An ensemble's config may name shipped models as members,
``dict(model='nucleiseg_mrcnn', weight=0.4)``: they are resolved to that
folder's config and weights, in the folder beside the ensemble's.
"""
import json
import os
import sys
from typing import Dict, List, Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS_DIR = os.path.join(REPO_ROOT, 'model_zoo')
# The best fold-0 score among models within 3x the Mask R-CNN's time (README, "Which model").
DEFAULT_MODEL = 'nucleiseg_ensemble'
WEIGHTS, CONFIG, THRESHOLDS = 'weights.safetensors', 'config.py', 'thresholds.json'
CARD, METRICS = 'MODEL_CARD.md', 'metrics.json'
KINDS = ('grey_dark', 'grey_bright', 'colour')


class ModelZooError(ValueError):
    """A shipped model that is unknown or malformed; the message names it."""


def is_model_folder(folder: str) -> bool:
    """Whether ``folder`` holds a model (``weights.safetensors`` and ``config.py``)."""
    return all(os.path.isfile(os.path.join(folder, f)) for f in (WEIGHTS, CONFIG))


def list_models(models_dir: Optional[str] = None) -> List[str]:
    """Names of the shipped models in ``models_dir`` (default ``model_zoo/``), sorted."""
    models_dir = models_dir or MODELS_DIR
    if not os.path.isdir(models_dir):
        return []
    return sorted(n for n in os.listdir(models_dir)
                  if not n.startswith('.') and is_model_folder(os.path.join(models_dir, n)))


def looks_like_name(model: str) -> bool:
    """Whether ``model`` is a model's name rather than a path (no separator, no ``.py``)."""
    return os.sep not in model and '/' not in model and not model.endswith('.py')


def model_folder(name: str, models_dir: Optional[str] = None) -> str:
    """The folder of the shipped model ``name``.

    Raises:
        ModelZooError: no such model (the message lists the known ones).
    """
    models_dir = models_dir or MODELS_DIR
    folder = os.path.join(models_dir, name)
    if not looks_like_name(name) or not is_model_folder(folder):
        known = ', '.join(list_models(models_dir)) or 'none'
        raise ModelZooError(f'{name}: no such shipped model in {models_dir} (known: {known})')
    return folder


def model_files(name: str, models_dir: Optional[str] = None):
    """``(config.py, weights.safetensors)`` paths of the shipped model ``name``."""
    folder = model_folder(name, models_dir)
    return os.path.join(folder, CONFIG), os.path.join(folder, WEIGHTS)


def read_thresholds(path: str) -> Dict[str, object]:
    """The settings of a ``thresholds.json``: ``{dotted.config.key: number or list}``.

    The file is ``{"settings": {...}, "tuned_on": "..."}``; only numbers (or
    lists of numbers, one per class) are accepted.

    Raises:
        ModelZooError: unreadable, not JSON, or not of that form.
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ModelZooError(f'{path}: cannot read the thresholds ({err})') from None
    settings = data.get('settings') if isinstance(data, dict) else None
    if not isinstance(settings, dict):
        raise ModelZooError(f'{path}: expected {{"settings": {{"dotted.config.key": number}}}}')
    for key, value in settings.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                  for v in values):
            raise ModelZooError(f'{path}: {key} must be a number or a list of numbers, '
                                f'got {value!r}')
    return settings


def thresholds_json(settings: Dict[str, object], tuned_on: str = '') -> str:
    """The text of a ``thresholds.json`` holding ``settings`` (dotted config keys)."""
    return json.dumps(dict(tuned_on=tuned_on, settings=settings), indent=2) + '\n'


def apply_thresholds(cfg, path: str) -> None:
    """Set the settings of the ``thresholds.json`` at ``path`` in ``cfg``.

    Raises:
        ModelZooError: a bad file, or a key close to one of the config's
            (a misspelling that would otherwise change nothing).
    """
    from custom_modules.engine.config_check import check_cfg_options
    settings = read_thresholds(path)
    try:
        check_cfg_options(cfg, settings)
    except ValueError as err:
        raise ModelZooError(f'{path}: {str(err).replace("--cfg-options: ", "")}') from None
    cfg.merge_from_dict(settings)


def resolve_members(cfg, models_dir: str, source: str) -> None:
    """Ensemble members given as ``dict(model=NAME, weight=W)``: their folder's files."""
    model = cfg.get('model', None) or {}
    if model.get('type') != 'NucleusEnsemble':
        return
    members = []
    for member in model.get('members', []):
        if 'model' in member:
            extra = set(member) - {'model', 'weight'}
            if extra:
                raise ModelZooError(f'{source}: a member named by model takes only a weight, '
                                    f'got {sorted(extra)}')
            try:
                config, weights = model_files(member['model'], models_dir)
            except ModelZooError as err:
                raise ModelZooError(f'{source}: ensemble member {err}') from None
            member = dict(config=config, checkpoint=weights, weight=member.get('weight', 1.0))
        members.append(member)
    cfg.model.members = members


def prepare_config(cfg, path: str):
    """A config as loaded from ``path``, finished as a model folder's config is.

    In a model folder (``config.py`` beside ``thresholds.json``) the thresholds
    are applied; an ensemble's members named by model are resolved (in the
    folder's parent when ``path`` is in a model folder, else in ``model_zoo/``).
    """
    folder = os.path.dirname(os.path.abspath(path))
    in_folder = os.path.basename(path) == CONFIG and os.path.isfile(os.path.join(folder, WEIGHTS))
    if in_folder and os.path.isfile(os.path.join(folder, THRESHOLDS)):
        apply_thresholds(cfg, os.path.join(folder, THRESHOLDS))
    resolve_members(cfg, os.path.dirname(folder) if in_folder else MODELS_DIR, path)
    return cfg


def loaded_files(config_path: Optional[str]) -> List[str]:
    """Files the model of ``config_path`` reads besides it and its weights: the
    ``thresholds.json`` beside it and each ensemble member's config, weights and theirs."""
    if not config_path:
        return []
    files = [os.path.join(os.path.dirname(config_path), THRESHOLDS)]
    model = load_config(config_path).get('model', None)
    for member in (model.get('members', None) if isinstance(model, dict) else None) or []:
        if 'config' in member:
            files += [member['config'], member['checkpoint'], *loaded_files(member['config'])]
    return sorted({os.path.abspath(f) for f in files if os.path.isfile(f)})


def load_safetensors(net, path: str) -> dict:
    """Load ``weights.safetensors`` into ``net`` (a built model), refusing one that does not fit.

    Floats stored in half precision are read as float32, then cast to the model's dtype.

    Returns:
        ``dict(state_dict=..., meta=...)`` (the file's metadata strings).

    Raises:
        CheckpointError: not a safetensors file, or weights of another model.
    """
    from custom_modules.engine.checkpoint import check_state_fits, read_safetensors
    state, meta = read_safetensors(path)
    check_state_fits(net, state, path)
    net.load_state_dict(state, strict=True)
    return dict(state_dict=state, meta=meta)


def read_metrics(folder: str) -> dict:
    """The folder's ``metrics.json`` (``{}`` when absent).

    Raises:
        ModelZooError: present but not a JSON object.
    """
    path = os.path.join(folder, METRICS)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            metrics = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ModelZooError(f'{path}: cannot read the metrics ({err})') from None
    if not isinstance(metrics, dict):
        raise ModelZooError(f'{path}: expected a JSON object')
    return metrics


def folder_size_mb(folder: str) -> float:
    """Total size of the files in ``folder`` (not recursive), in MB (10^6 bytes)."""
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
               if os.path.isfile(os.path.join(folder, f))) / 1e6


def _fmt(value, spec: str = '.4f') -> str:
    return '-' if value is None else format(value, spec)


SPEED_SIDES = ('256', '1024')  # bench/bench_models.py's image sides


def speed_cells(metrics: dict) -> str:
    """Seconds per image at each of ``SPEED_SIDES``, one view and TTA (``-`` when unmeasured)."""
    seconds = (metrics.get('speed_by_size', None) or {}).get('seconds', None) or {}
    return ''.join(f'{_fmt((seconds.get(side) or {}).get(view), ".2f"):>9}'
                   for side in SPEED_SIDES for view in ('one_view', 'tta'))


def models_table(models_dir: Optional[str] = None) -> str:
    """One line per shipped model: name, default, fold-0 score and per kind, seconds per
    image (bench/bench_models.py), size."""
    models_dir = models_dir or MODELS_DIR
    head = f'{"model":22}{"default":>8}{"fold-0":>8}' + ''.join(f'{k:>12}' for k in KINDS)
    head += ''.join(f'{f"s{side}" + tag:>9}' for side in SPEED_SIDES for tag in ('', 'tta'))
    lines = [head + f'{"MB":>7}  measured']
    for name in list_models(models_dir):
        folder = os.path.join(models_dir, name)
        metrics = read_metrics(folder)
        fold0 = metrics.get('fold0', None) or {}
        kinds = fold0.get('per_kind', None) or {}
        lines.append(f'{name:22}{"yes" if name == DEFAULT_MODEL else "":>8}'
                     f'{_fmt(fold0.get("score")):>8}'
                     + ''.join(f'{_fmt(kinds.get(k)):>12}' for k in KINDS) + speed_cells(metrics)
                     + f'{folder_size_mb(folder):7.1f}  {fold0.get("date") or "-"}')
    if len(lines) == 1:
        lines.append(f'(no shipped model in {models_dir})')
    else:
        lines.append('s256, s1024: seconds per 256 x 256 and 1024 x 1024 image, one view and '
                     'TTA (tta), on the machine in metrics.json')
    return '\n'.join(lines)


def load_config(path: str, cfg_options: Optional[dict] = None):
    """Load ``path``, apply ``--cfg-options`` and fill in the fields, with one-line errors.

    Overrides of top-level keys (``data_root=/data/``, ``fold=1``) are merged
    before :func:`~custom_modules.engine.config_check.fill_fields`, so what
    follows from them moves, and so are dotted ones into a key a field names
    (``appearance.0.prob=0.15``); other dotted ones (``train_dataloader.dataset.ann_file=...``)
    after it, so they set exactly that value. A shipped model's ``config.py``
    gets its ``thresholds.json`` (before the overrides), and an ensemble its
    members named by model (:func:`prepare_config`). Warnings of
    :func:`~custom_modules.engine.config_check.check_cfg_options` (a new key)
    are printed to stderr.

    Raises:
        ValueError: no such file, a config that does not load (syntax error,
            missing ``_base_``, a bad ``thresholds.json``, ...), or an override
            refused by ``check_cfg_options``.
    """
    from mmengine.config import Config

    from custom_modules.engine.config_check import (check_cfg_options, fill_fields,
                                                    split_field_options)
    if not os.path.isfile(path):
        raise ValueError(f'{path}: no such config file')
    try:
        cfg = Config.fromfile(path)
    except Exception as err:  # noqa: BLE001  a config is Python: it can raise anything
        raise ValueError(f'{path}: cannot load the config ({type(err).__name__}: {err})') from err
    options = dict(cfg_options or {})
    top = {k: v for k, v in options.items() if '.' not in k}
    into_fields, dotted = split_field_options(
        cfg, {k: v for k, v in options.items() if '.' in k})
    top.update(into_fields)
    warnings = check_cfg_options(cfg, top)
    cfg.merge_from_dict(top)
    fill_fields(cfg)
    cfg = prepare_config(cfg, path)
    warnings += check_cfg_options(cfg, dotted)
    cfg.merge_from_dict(dotted)
    for warning in warnings:
        print(f'warning: {warning}', file=sys.stderr)
    return cfg
