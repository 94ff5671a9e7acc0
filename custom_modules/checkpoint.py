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
"""
import json
import os.path as osp

import mmengine
import torch
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

OFFLINE_HINT = ('without a network, train from scratch with `--cfg-options load_from=None '
                'model.backbone.init_cfg=None`, or point load_from at a local checkpoint '
                '(and set model.backbone.init_cfg=None)')


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_trusted_local(filename: str, map_location=None):
    """mmengine's local loader, allowing the pickled objects mmengine saves."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


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
