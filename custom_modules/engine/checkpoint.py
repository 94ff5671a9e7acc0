"""Checkpoint loading that works on the project's machines.

Three of mmengine 0.10.7's loaders are re-registered here, and only here:

* local files: loaded with ``torch.load(weights_only=True)``, allowing
  besides tensors only the few types mmengine pickles into its checkpoints
  (:data:`MMENGINE_TYPES`: its message hub's history buffers, numpy arrays
  and scalars). A checkpoint that names anything else could run code when
  loaded: it is refused with one line naming the file and the type, unless
  :func:`trust_pickled_code` (the tools' ``--trust-pickle``) allows it.
  A ``.safetensors`` file (a shipped model's weights, ``load_from`` to fine-tune
  it) is read with safetensors: tensors only.
* ``torchvision://NAME`` (the ImageNet initialisation of MMDetection's
  ResNets): mmengine imports torchvision to look the URL up, and torchvision's
  registry wheels cannot load beside the CPU torch. Where torchvision cannot
  load, the URL comes from mmengine's own table of torchvision weights.
* ``http(s)://``: an offline machine gets an error that says what to do
  instead of a bare ``URLError``.

:func:`load_checkpoint_file` and :func:`check_checkpoint_fits` turn a truncated
file or a checkpoint of another model into one line naming the file (the weight
converters' read, map and write: :mod:`custom_modules.engine.weight_convert`).
"""
import importlib
import json
import os.path as osp
import pickle
import re
from typing import Optional

import mmengine
import numpy as np
import torch
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

OFFLINE_HINT = ('without a network, train from scratch with `--cfg-options load_from=None '
                'model.backbone.init_cfg=None`, or point load_from at a local checkpoint '
                '(and set model.backbone.init_cfg=None)')


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded or does not fit a model; the message names it."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that pickles more than data (loading it could run code)."""


_TRUST = {'pickle': False}  # the process's policy: the tools' --trust-pickle


def trust_pickled_code(trust: bool) -> None:
    """Allow (``True``) any pickled object in checkpoints loaded from now on, or refuse them.

    Loading such a checkpoint runs whatever code it names: only for files you trust.
    """
    _TRUST['pickle'] = bool(trust)


HISTORY_STATISTICS = ('min', 'max', 'mean', 'current')


def history_buffer_method(owner, name: str):
    """``getattr`` as mmengine's pickled ``HistoryBuffer`` needs it, and nothing more.

    A ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'min')``; a free ``getattr`` would let a pickle
    reach any function, so this one answers those four names only.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if owner is not HistoryBuffer or name not in HISTORY_STATISTICS:
        raise pickle.UnpicklingError(f'Unsupported global: GLOBAL builtins.getattr of '
                                     f'{getattr(owner, "__name__", type(owner).__name__)}.{name}')
    return getattr(HistoryBuffer, name)


def mmengine_types() -> list:
    """What mmengine 0.10's checkpoints pickle besides tensors (found by loading one
    written by ``tools/train.py`` with ``weights_only=True`` and reading the errors):
    the message hub's ``HistoryBuffer`` (and its statistics methods), numpy arrays,
    dtypes and scalars."""
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = importlib.import_module('numpy._core.multiarray' if np.__version__ >= '2'
                                         else 'numpy.core.multiarray')
    return [HistoryBuffer, (history_buffer_method, 'builtins.getattr'), np.ndarray, np.dtype,
            multiarray._reconstruct, multiarray.scalar,
            *{type(np.dtype(c)) for c in '?bhilqBHILQefdgFDG'}]


def _torch_load(path: str, map_location, trust: bool) -> dict:
    """``torch.load`` of data only (the types of :func:`mmengine_types`), unless ``trust``."""
    if trust:
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(mmengine_types()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        what = refused_global(str(err))
        if what is None:  # not a refused type: garbage, reported as such by the caller
            raise
        raise UnsafeCheckpointError(
            f'{path}: refusing to load {what} from this checkpoint (unpickling it could run '
            'code; checkpoints of this project hold tensors, numbers and mmengine\'s logs '
            'only); pass --trust-pickle if you trust this file') from None


def refused_global(message: str) -> Optional[str]:
    """The type or function that ``torch.load(weights_only=True)`` refused, from its error."""
    for pattern in (r'GLOBAL ([\w.]+)', r"got <class '([\w.]+)'>",
                    r'unrecognized function (\S+)'):
        found = re.search(pattern, message)
        if found:
            return found.group(1)
    return None


def load_checkpoint_file(path: str, map_location='cpu', trust: Optional[bool] = None) -> dict:
    """Load a local checkpoint: tensors and the data types mmengine saves, or the
    tensors of a ``.safetensors`` file (a shipped model's weights, to fine-tune from).

    Args:
        path: the checkpoint.
        map_location: as ``torch.load``'s.
        trust: allow any pickled object (runs the code a file names);
            ``None``: the process's setting (:func:`trust_pickled_code`).

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: it pickles another type (named), and not ``trust``.
        CheckpointError: truncated, or not a checkpoint.
    """
    path = osp.expanduser(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} can not be found.')
    if path.endswith('.safetensors'):  # a shipped model's weights: tensors, never code
        return dict(state_dict=read_safetensors(path)[0])
    try:
        ckpt = _torch_load(path, map_location, _TRUST['pickle'] if trust is None else trust)
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # noqa: BLE001  unpickling garbage can raise anything
        raise CheckpointError(f'{path}: not a loadable checkpoint (truncated?): '
                              f'{type(err).__name__}: {err}') from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}: not a checkpoint (it holds a {type(ckpt).__name__}, '
                              'not a dict)')
    return ckpt


def read_safetensors(path: str) -> tuple:
    """The tensors of a ``.safetensors`` file, half-precision floats as float32, and its
    metadata strings: ``(state_dict, meta)``. Nothing is unpickled.

    Raises:
        CheckpointError: naming ``path``: not a safetensors file.
    """
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(path, framework='pt', device='cpu') as f:  # one open: tensors and header
            state = {key: f.get_tensor(key) for key in f.keys()}
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f'{path}: not a loadable safetensors file ({err})') from None
    return {k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()}, meta


def load_state_dict_file(path: str) -> dict:
    """The tensors of a weights file: a plain state dict, or a checkpoint's ``state_dict``.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: naming ``path``: unreadable, or holding more than tensors.
    """
    refused = f'{path}: not a state dict of tensors (torch.load with weights_only refused it)'
    try:
        ckpt = load_checkpoint_file(path, trust=False)
    except UnsafeCheckpointError:
        raise CheckpointError(refused) from None
    except CheckpointError as err:
        if isinstance(err.__cause__, pickle.UnpicklingError):  # garbage: torch's text is long
            raise CheckpointError(refused) from None
        raise
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict):
        raise CheckpointError(f'{path}: expected a state dict, found {type(state).__name__}')
    other = next((k for k, v in state.items() if not isinstance(v, torch.Tensor)), None)
    if other is not None:
        raise CheckpointError(f'{path}: not a state dict of tensors ({other!r} holds a '
                              f'{type(state[other]).__name__})')
    return state


def check_checkpoint_fits(model: torch.nn.Module, path: str, examples: int = 3,
                          trust: Optional[bool] = None) -> dict:
    """Load ``path`` and check that its weights fit ``model`` key by key and shape by shape.

    A leading ``module.`` (a wrapped model's checkpoint) is ignored, as
    mmengine does when loading. ``trust``: as :func:`load_checkpoint_file`'s.

    Returns:
        The loaded checkpoint.

    Raises:
        CheckpointError: naming the file and how many keys are missing,
            unexpected or mis-shaped, with a few of each.
    """
    ckpt = load_checkpoint_file(path, trust=trust)
    check_state_fits(model, ckpt, path, examples)
    return ckpt


def unwrapped_state(ckpt: dict) -> dict:
    """A checkpoint's state dict with a wrapper's leading ``module.`` dropped from each key."""
    state = ckpt.get('state_dict', ckpt)
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def check_state_fits(model: torch.nn.Module, ckpt: dict, path: str, examples: int = 3) -> None:
    """Check an already loaded checkpoint ``ckpt`` (read from ``path``) against ``model``.

    Raises:
        CheckpointError: as :func:`check_checkpoint_fits`.
    """
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict):
        raise CheckpointError(f'{path}: its state_dict is a {type(state).__name__}, not a dict')
    state = unwrapped_state(ckpt)
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
    """mmengine's local loader (resume, ``load_from``): data only, unless trusted."""
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
