"""Checks of a config and its command-line overrides before a runner is built.

``Config.merge_from_dict`` accepts any dotted key: ``model.test_cfg.rcnn.score_th=0.5``
adds a new, unused ``score_th`` beside ``score_thr``. :func:`check_cfg_options`
compares each option's path with the loaded config first. :func:`load_config`
and :func:`check_data_paths` turn a missing config or data file into one line.
"""
import difflib
import os
from typing import List, Mapping, Optional, Sequence, Tuple

DELETE_KEY = '_delete_'


def _check_path(root: Mapping, keys: Sequence[str]) -> Optional[Tuple[bool, str]]:
    """``(is_error, message)`` for the first key of ``keys`` absent from ``root``, else None."""
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
    return None


def check_cfg_options(cfg, options: Optional[dict]) -> List[str]:
    """Check ``--cfg-options`` against a loaded config before merging them.

    An option whose path leaves the config is an error when the first absent
    key is close to an existing one (difflib), or is not an index of a list;
    otherwise it is a new key and only warned about.

    Args:
        cfg: the loaded ``mmengine.Config`` (or a plain dict).
        options: ``{dotted.key: value}`` as parsed by mmengine's ``DictAction``.

    Returns:
        Warnings, one line per option that adds a new key.

    Raises:
        ValueError: every likely misspelt option, with the nearest valid key.
    """
    root = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    errors, warnings = [], []
    for full_key in options or {}:
        found = _check_path(root, full_key.split('.'))
        if found:
            (errors if found[0] else warnings).append(found[1])
    if errors:
        raise ValueError('--cfg-options: ' + '\n'.join(errors))
    return warnings


def load_config(path: str):
    """``Config.fromfile(path)``, with one line naming the file when it cannot be loaded.

    Raises:
        ValueError: no such file, or a config that does not load (syntax
            error, missing ``_base_``, ...).
    """
    from mmengine.config import Config
    if not os.path.isfile(path):
        raise ValueError(f'{path}: no such config file')
    try:
        return Config.fromfile(path)
    except Exception as err:  # noqa: BLE001  a config is Python: it can raise anything
        raise ValueError(f'{path}: cannot load the config ({type(err).__name__}: {err})') from err


def check_data_paths(cfg, loaders: Sequence[str]) -> None:
    """Check that the annotation file and image folder of each dataloader exist.

    A dataset without a plain ``ann_file`` (wrappers such as ConcatDataset)
    is skipped; ``data_root`` is joined as mmengine's datasets do.

    Args:
        cfg: the merged config.
        loaders: names such as ``'train_dataloader'``; absent or None ones are skipped.

    Raises:
        ValueError: naming the config key and the missing path.
    """
    for loader in loaders:
        dataset = (cfg.get(loader, None) or {}).get('dataset', None) or {}
        ann_file = dataset.get('ann_file', None)
        if not isinstance(ann_file, str) or not ann_file:
            continue
        root = dataset.get('data_root', None) or ''
        img = (dataset.get('data_prefix', None) or {}).get('img', None)
        for key, path, exists in (('ann_file', ann_file, os.path.isfile),
                                  ('data_prefix.img', img, os.path.isdir)):
            if isinstance(path, str) and path:
                full = path if os.path.isabs(path) or not root else os.path.join(root, path)
                if not exists(full):
                    kind = 'file' if key == 'ann_file' else 'folder'
                    hint = ' (made by data_prep/prepare_dsb.py)' if key == 'ann_file' else ''
                    raise ValueError(f'{loader}.dataset.{key}: no such {kind} {full}{hint}')
