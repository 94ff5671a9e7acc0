"""Loading checkpoints the project wrote on torch >= 2.6.

torch 2.6 made ``torch.load`` default to ``weights_only=True``. mmengine
0.10.7 does not pass the argument, so resuming a checkpoint it wrote (which
pickles its message hub, numpy arrays and config) fails. This module, and only
this module, re-registers mmengine's loader for local files with
``weights_only=False``: checkpoints are code, load only those you trust.
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_trusted_local(filename: str, map_location=None):
    """mmengine's local loader, allowing the pickled objects mmengine saves."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)
