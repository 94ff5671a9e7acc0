"""Checkpoint loading that works on the project's machines.

Three of mmengine 0.10.7's loaders are re-registered here, and only here:

* local files: torch 2.6 made ``torch.load`` default to ``weights_only=True``
  and mmengine does not pass the argument, so resuming a checkpoint it wrote
  (which pickles its message hub, numpy arrays and config) fails. We load
  with ``weights_only=False``: checkpoints are code, load only those you trust.
* ``torchvision://NAME`` (the ImageNet initialisation of MMDetection's
  ResNets): mmengine imports torchvision to look the URL up, and torchvision's
  registry wheels cannot load beside the CPU torch. Where torchvision cannot
  load, the URL comes from mmengine's own table of torchvision weights.
* ``http(s)://``: an offline machine gets an error that says what to do
  instead of a bare ``URLError``.

:func:`load_checkpoint_file` and :func:`check_checkpoint_fits` turn a truncated
file or a checkpoint of another model into one line naming the file.
"""
import json
import os.path as osp
import re

import mmengine
import torch
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

OFFLINE_HINT = ('without a network, train from scratch with `--cfg-options load_from=None '
                'model.backbone.init_cfg=None`, or point load_from at a local checkpoint '
                '(and set model.backbone.init_cfg=None)')


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded or does not fit a model; the message names it."""


def load_checkpoint_file(path: str, map_location='cpu') -> dict:
    """Load a local checkpoint (trusted: arbitrary pickled objects are allowed).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: truncated, or not a checkpoint.
    """
    path = osp.expanduser(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} can not be found.')
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001  unpickling garbage can raise anything
        raise CheckpointError(f'{path}: not a loadable checkpoint (truncated?): '
                              f'{type(err).__name__}: {err}') from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}: not a checkpoint (it holds a {type(ckpt).__name__}, '
                              'not a dict)')
    return ckpt


def check_checkpoint_fits(model: torch.nn.Module, path: str, examples: int = 3) -> dict:
    """Load ``path`` and check that its weights fit ``model`` key by key and shape by shape.

    A leading ``module.`` (a wrapped model's checkpoint) is ignored, as
    mmengine does when loading.

    Returns:
        The loaded checkpoint.

    Raises:
        CheckpointError: naming the file and how many keys are missing,
            unexpected or mis-shaped, with a few of each.
    """
    ckpt = load_checkpoint_file(path)
    check_state_fits(model, ckpt, path, examples)
    return ckpt


def check_state_fits(model: torch.nn.Module, ckpt: dict, path: str, examples: int = 3) -> None:
    """Check an already loaded checkpoint ``ckpt`` (read from ``path``) against ``model``.

    Raises:
        CheckpointError: as :func:`check_checkpoint_fits`.
    """
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict):
        raise CheckpointError(f'{path}: its state_dict is a {type(state).__name__}, not a dict')
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [f'{k} {_shape(state[k])} vs {_shape(own[k])} in the model' for k in own
                 if k in state and _shape(state[k]) != _shape(own[k])]
    if missing or unexpected or misshaped:
        parts = [f'{len(keys)} {what}' + (f' (e.g. {", ".join(keys[:examples])})' if keys else '')
                 for what, keys in (('missing', missing), ('unexpected', unexpected),
                                    ('mis-shaped', misshaped))]
        raise CheckpointError(f'{path}: does not fit the model, keys: ' + '; '.join(parts))


def _shape(value) -> tuple:
    """Shape of a tensor or array, ``()`` for anything else."""
    return tuple(getattr(value, 'shape', ()))


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_trusted_local(filename: str, map_location=None):
    """mmengine's local loader, allowing the pickled objects mmengine saves."""
    return load_checkpoint_file(filename, map_location=map_location)


@CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), force=True)
def load_url_or_explain(filename: str, map_location=None):
    """mmengine's HTTP loader; a failed download names the URL and the way out."""
    try:
        return mm_checkpoint.load_from_http(filename, map_location=map_location)
    except OSError as err:  # URLError and socket errors are OSErrors
        raise RuntimeError(f'cannot download {filename} ({err}); {OFFLINE_HINT}') from err


def torchvision_url(name: str) -> str:
    """URL of torchvision's ImageNet weights ``name`` (``resnet101``, say)."""
    try:
        urls = mm_checkpoint.get_torchvision_models()
    except Exception:  # noqa: BLE001  torchvision absent, or a CUDA build beside the CPU torch
        with open(osp.join(mmengine.__path__[0], 'hub', 'torchvision_0.12.json')) as f:
            urls = json.load(f)
    if name not in urls:
        raise KeyError(f'torchvision://{name}: no such torchvision weights '
                       f'(known: {", ".join(sorted(urls)[:8])}, ...)')
    return urls[name]


@CheckpointLoader.register_scheme(prefixes=('modelzoo://', 'torchvision://'), force=True)
def load_torchvision(filename: str, map_location=None):
    """``torchvision://NAME`` with or without a loadable torchvision."""
    name = filename.split('://', 1)[1]
    return load_url_or_explain(torchvision_url(name), map_location=map_location)
