"""Checks of a config and its command-line overrides before a runner is built.

``Config.merge_from_dict`` accepts any dotted key: ``model.test_cfg.rcnn.score_th=0.5``
adds a new, unused ``score_th`` beside ``score_thr``, and ``train_cfg.max_iters=abc``
puts a string where a number belongs (a traceback deep in the runner).
:func:`check_cfg_options` compares each option's path and value with the loaded
config first. :func:`fill_fields` fills in the configs' fields
(``'{ann_dir}train_fold{fold}.json'``) once the overrides are merged, and
:func:`~custom_modules.inference.model_zoo.load_config` and
:func:`check_data_paths` turn a missing config or data file into one line;
:func:`check_num_classes` (run by :func:`check_data_paths`) a model whose
number of classes is not the data's.
"""
import copy
import difflib
import json
import os
import re
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

DELETE_KEY = '_delete_'
FIELD = re.compile(r'\{(\w+)\}')  # '{name}': the config's top-level key ``name``
# Where models keep their number of (thing) classes, below ``model`` (wrappers'
# ``module`` keys skipped): two-stage heads, single-stage heads (RTMDet-Ins,
# CondInst, SOLO), top-level, Mask2Former.
NUM_CLASSES_KEYS = ('roi_head.bbox_head.num_classes', 'roi_head.mask_head.num_classes',
                    'bbox_head.num_classes', 'mask_head.num_classes', 'num_classes',
                    'panoptic_head.num_things_classes')


def _type_problem(full: str, old, new) -> Optional[str]:
    """Why ``new`` cannot replace the config's ``old`` value (text for a number or a
    boolean), or None. Other changes of type (None, a list per class) are allowed."""
    if not isinstance(new, str):
        return None
    if isinstance(old, bool):
        return f'{full}={new}: expected True or False (the config has {old})'
    if isinstance(old, (int, float)):
        kind = 'an integer' if isinstance(old, int) else 'a number'
        return f'{full}={new}: expected {kind} (the config has {old})'
    return None


def _check_path(root: Mapping, keys: Sequence[str], value=None) -> Optional[Tuple[bool, str]]:
    """``(is_error, message)`` for the first key of ``keys`` absent from ``root``, or for
    a ``value`` of the wrong type for the key's (see :func:`_type_problem`); else None."""
    full, node = '.'.join(keys), root
    for depth, key in enumerate(keys):
        parent = '.'.join(keys[:depth])
        if key == DELETE_KEY:
            return None
        if isinstance(node, (list, tuple)):
            if key.isdigit() and int(key) < len(node):
                node = node[int(key)]
                continue
            return True, (f'{full}: {parent} is a list of {len(node)}; '
                          f'{key!r} is not one of its indices')
        if not isinstance(node, Mapping):
            return None  # mmengine itself refuses to put keys into a non-dict value
        if key in node:
            node = node[key]
            continue
        close = difflib.get_close_matches(key, [k for k in node if isinstance(k, str)], n=1)
        if close:
            return True, (f'{full}: the config has no key {key!r}'
                          f'{" in " + parent if parent else ""}; did you mean '
                          f'{".".join(list(keys[:depth]) + close)}?')
        where = '.'.join(keys[:depth + 1])
        return False, f'{full}: adds a key absent from the config' + (
            f' ({where})' if where != full else '')
    problem = _type_problem(full, node, value)
    return (True, problem) if problem else None


def check_cfg_options(cfg, options: Optional[dict]) -> List[str]:
    """Check ``--cfg-options`` against a loaded config before merging them.

    An option whose path leaves the config is an error when the first absent
    key is close to an existing one (difflib), or is not an index of a list;
    otherwise it is a new key and only warned about. Text given for a key
    whose value is a number or a boolean is an error.

    Args:
        cfg: the loaded ``mmengine.Config`` (or a plain dict).
        options: ``{dotted.key: value}`` as parsed by mmengine's ``DictAction``.

    Returns:
        Warnings, one line per option that adds a new key.

    Raises:
        ValueError: every likely misspelt option, with the nearest valid key,
            and every value of the wrong type.
    """
    root = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    errors, warnings = [], []
    for full_key, value in (options or {}).items():
        found = _check_path(root, full_key.split('.'), value)
        if found:
            (errors if found[0] else warnings).append(found[1])
    if errors:
        raise ValueError('--cfg-options: ' + '\n'.join(errors))
    return warnings


def _filled(value, top: Mapping, seen: Tuple[str, ...]):
    """``value`` with its fields filled from ``top`` (see :func:`fill_fields`)."""
    if isinstance(value, str):
        whole = FIELD.fullmatch(value)
        if whole and whole.group(1) in top:
            name = whole.group(1)
            if name in seen:
                raise ValueError(f'the field {{{name}}} refers to itself ({" -> ".join(seen)})')
            return _filled(copy.deepcopy(top[name]), top, seen + (name, ))
        return FIELD.sub(lambda m: str(_filled(top[m.group(1)], top, seen + (m.group(1), )))
                         if m.group(1) in top else m.group(0), value)
    if isinstance(value, Mapping):
        return {k: _filled(v, top, seen) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = []
        for item in value:
            whole = FIELD.fullmatch(item) if isinstance(item, str) else None
            filled = _filled(item, top, seen)
            if whole and isinstance(value, list) and isinstance(filled, list):
                # a list piece, also through a field: ['{train_load}', '{augment}', '{pack}']
                items.extend(filled)
            else:
                items.append(filled)
        return type(value)(items)
    return value


def fill_fields(cfg) -> None:
    """Fill in the fields of ``cfg`` in place: ``'{name}'`` names the top-level key ``name``.

    A whole-string field takes the key's value (a number, a tuple, a dict); a
    whole-string field in a list that names a list is spliced in; a field inside
    a longer string is formatted (``'{ann_dir}val_fold{fold}.json'``). Fields
    nest (a field naming a field that names a list is spliced too); braces naming
    no top-level key are left alone. The configs' bases keep what follows from a
    key (data paths, schedule) as fields, so a leaf or an override of the key moves
    it all (``configs/_base_/dsb_dataset.py``).

    Raises:
        ValueError: a field that refers to itself.
    """
    top = {k: v.to_dict() if hasattr(v, 'to_dict') else v for k, v in cfg.items()}
    for key, value in top.items():
        filled = _filled(value, top, (key, ))
        if filled != value:
            cfg[key] = filled


def _field_names(value) -> set:
    """The names of the fields (``'{name}'``) anywhere in ``value``."""
    if isinstance(value, str):
        return set(FIELD.findall(value))
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return set().union(*(_field_names(item) for item in value))
    return set()


def split_field_options(cfg, options: Mapping) -> Tuple[dict, dict]:
    """Split dotted ``--cfg-options`` into those merged before the fields are filled and after.

    A dotted option into a key that a field names (``appearance.0.prob=0.15``,
    ``{appearance}`` filled into the training pipeline) is merged before
    :func:`fill_fields`, so the change reaches every place the key is filled
    in; any other (``train_dataloader.dataset.ann_file=...``) after it.

    Returns:
        ``(before, after)``, both ``{dotted.key: value}``.

    Raises:
        ValueError: an option into a key whose own value holds fields (its
            indices are not those of the filled config): set the pieces instead.
    """
    top = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    named = _field_names(list(top.values()))
    before, after = {}, {}
    for key, value in options.items():
        head = key.split('.')[0]
        if head not in named or head not in top:
            after[key] = value
            continue
        inner = _field_names(top[head])
        if inner:
            raise ValueError(f'--cfg-options {key}: {head} is built from fields '
                             f'({", ".join("{" + n + "}" for n in sorted(inner))}); '
                             'override one of those, or the whole key')
        before[key] = value
    return before, after


def dataset_path(dataset: Mapping, path) -> Optional[str]:
    """``path`` joined to the dataset's ``data_root`` as mmengine does; None if not a path."""
    if not isinstance(path, str) or not path:
        return None
    root = dataset.get('data_root', None) or ''
    return path if os.path.isabs(path) or not root else os.path.join(root, path)


def check_data_paths(cfg, loaders: Sequence[str]) -> None:
    """Check that the annotation file and image folder of each dataloader exist.

    A dataset without a plain ``ann_file`` (wrappers such as ConcatDataset)
    is skipped; ``data_root`` is joined as mmengine's datasets do. Then
    :func:`check_num_classes` compares the model with the annotation files.

    Args:
        cfg: the merged config.
        loaders: names such as ``'train_dataloader'``; absent or None ones are skipped.

    Raises:
        ValueError: naming the config key and the missing path.
    """
    for loader in loaders:
        dataset = (cfg.get(loader, None) or {}).get('dataset', None) or {}
        if dataset_path(dataset, dataset.get('ann_file', None)) is None:
            continue
        img = (dataset.get('data_prefix', None) or {}).get('img', None)
        for key, path, exists in (('ann_file', dataset.get('ann_file'), os.path.isfile),
                                  ('data_prefix.img', img, os.path.isdir)):
            full = dataset_path(dataset, path)
            if full is not None and not exists(full):
                kind = 'file' if key == 'ann_file' else 'folder'
                hint = ' (made by data_prep/prepare_dsb.py)' if key == 'ann_file' else ''
                raise ValueError(f'{loader}.dataset.{key}: no such {kind} {full}{hint}')
    check_num_classes(cfg, loaders)


def _values_at(node, parts: Sequence[str], where: str) -> List[Tuple[str, object]]:
    """``(key, value)`` at the dotted ``parts`` below ``node``; a list fans out by index."""
    if not parts:
        return [(where, node)]
    if not isinstance(node, Mapping) or parts[0] not in node:
        return []
    child, where = node[parts[0]], f'{where}.{parts[0]}'
    if isinstance(child, (list, tuple)):
        return [hit for i, item in enumerate(child)
                for hit in _values_at(item, parts[1:], f'{where}.{i}')]
    return _values_at(child, parts[1:], where)


def model_num_classes(model: Mapping) -> List[Tuple[str, int]]:
    """``(config key, value)`` of every number of classes of a model config.

    Wrappers (TTA, tiling) are looked through via their ``module`` key; a
    head given as a list (Cascade R-CNN's stages) gives one entry per stage.
    """
    prefix = 'model'
    while isinstance(model, Mapping) and isinstance(model.get('module', None), Mapping):
        model, prefix = model['module'], prefix + '.module'
    return [(key, value) for path in NUM_CLASSES_KEYS
            for key, value in _values_at(model, path.split('.'), prefix)
            if isinstance(value, int) and not isinstance(value, bool)]


def check_num_classes(cfg, loaders: Sequence[str]) -> None:
    """Check that the model has as many classes as each dataloader's dataset.

    A ``NucleusDataset`` takes its classes from the JSON's categories (see
    :func:`custom_modules.data.datasets.dataset_classes`); a JSON without
    ``categories`` and a missing file are left to the dataset.

    Args:
        cfg: the merged config (``model`` and the dataloaders).
        loaders: names such as ``'train_dataloader'``; absent or None ones are skipped.

    Raises:
        ValueError: naming the model's key and number, the JSON file and its
            number of classes, or a JSON that cannot be read.
    """
    heads = model_num_classes(cfg.get('model', None) or {})
    if not heads:
        return
    from custom_modules.data.datasets import dataset_classes
    seen: Dict[str, dict] = {}
    for loader in loaders:
        dataset = (cfg.get(loader, None) or {}).get('dataset', None) or {}
        path = dataset_path(dataset, dataset.get('ann_file', None))
        if path is None or not os.path.isfile(path):
            continue
        if path not in seen:
            try:
                with open(path) as f:
                    seen[path] = json.load(f)
            except (OSError, UnicodeDecodeError, ValueError) as err:
                raise ValueError(f'{loader}.dataset.ann_file: {path}: cannot read the COCO JSON '
                                 f'({err})') from None
        categories = seen[path].get('categories', None) if isinstance(seen[path], dict) else None
        if categories is None:
            continue
        wanted = (dataset.get('metainfo', None) or {}).get('classes', None)
        names = dataset_classes(categories, path, wanted)[0]
        for key, value in heads:
            if value != len(names):
                raise ValueError(
                    f'{key} = {value}, but {path} ({loader}.dataset.ann_file) has '
                    f'{len(names)} classes {list(names)}: set num_classes to {len(names)} in the '
                    'config, or make the data with the classes wanted '
                    '(data_prep/prepare_dsb.py --class-column, --class-map, --categories-from)')
