"""The weight converters' read, map and write (``tools/convert_mobilenetv2.py``,
``tools/convert_efficientnet_lite.py``): a state dict read without unpickling code,
mapped to MMDetection's key names, checked against the network, written atomically.
"""
import io
import sys
from typing import Callable, Optional

import torch

from custom_modules.engine.checkpoint import (CheckpointError, check_state_fits,
                                              load_state_dict_file)
from custom_modules.io.atomic import check_can_write, write_atomic


def save_state_dict(path: str, state: dict) -> None:
    """Write ``{'state_dict': state}`` to ``path`` all-or-nothing (for ``init_cfg=Pretrained``)."""
    buffer = io.BytesIO()
    torch.save({'state_dict': state}, buffer)
    write_atomic(str(path), buffer.getvalue())


def convert_state_dict_file(src: str, dst: str, convert: Callable[[dict], dict],
                            model: torch.nn.Module, name: str) -> dict:
    """Map the state dict at ``src`` with ``convert`` and write it to ``dst``; return it.

    Nothing is written unless ``dst`` is writable, ``convert`` returns (it refuses
    with a ValueError) and every key and shape of the result fits ``model``
    (``name``: the network, for messages).

    Raises:
        OSError: ``src`` missing, or ``dst`` not writable; the message names it.
        CheckpointError: one line naming ``src``: unreadable, refused, or not fitting.
    """
    check_can_write([str(dst)])
    state = load_state_dict_file(str(src))
    try:
        converted = convert(state)
    except ValueError as err:
        raise CheckpointError(f'{src}: {err}') from None
    check_state_fits(model, converted, f'{src} (converted for {name})')
    save_state_dict(dst, converted)
    return converted


def run_converter(src: Optional[str], default_source: Callable[[], str], dst: str,
                  convert: Callable[[dict], dict], model: Callable[[], torch.nn.Module],
                  name: str) -> int:
    """A weight converter's run: :func:`convert_state_dict_file` from ``src`` (or
    ``default_source()``) to ``dst`` for ``model()``; 0 after a line of what it wrote,
    or 2 after ``error: ...`` on stderr (no source, ``dst`` not writable, a refused file)."""
    try:
        src = src or default_source()
        converted = convert_state_dict_file(src, dst, convert, model(), name)
    except (OSError, ValueError) as err:  # CheckpointError is a ValueError naming src
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'{len(converted)} tensors of {name} from {src} -> {dst}')
    return 0
