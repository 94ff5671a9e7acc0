"""Checks of command-line paths and options, made before any model is built.

:func:`check_output_folder` proves an output folder writable by writing
(and removing) a probe file, because permission bits say nothing for root
and nothing about ``/proc`` or a full or read-only file system;
:func:`check_device` refuses a torch device that does not exist here;
:func:`input_problem` says why a named input cannot be read as a file
(a symbolic link loop, a dangling link, a FIFO) before anything opens it.
"""
import errno
import os
import stat
import tempfile
from typing import Iterable, Optional

from custom_modules.io.atomic import check_can_write


def _probe(folder: str) -> None:
    """Create and remove a file in ``folder``; OSError naming it when that fails."""
    try:
        handle, probe = tempfile.mkstemp(prefix='.write-probe-', dir=folder)
        os.close(handle)
        os.remove(probe)
    except OSError as err:
        raise OSError(f'{folder}: cannot write there ({err.strerror or err})') from None


def check_output_folder(out: str, files: Iterable[str]) -> None:
    """Check that the output folder ``out`` and ``files`` in it can be written.

    Nothing is left behind: a missing folder is not made, a probe file is
    written into the deepest existing folder on the way and removed.

    Args:
        out: the output folder (``--out``).
        files: every kind of file the run writes below ``out`` (one per folder
            is enough).

    Raises:
        ValueError: ``out`` is empty (an unset shell variable) or a file.
        OSError: a file or folder in the way, or a folder that cannot be
            written; the message names it.
    """
    if not out.strip():
        raise ValueError('--out is empty (an unset variable?): name the output folder')
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f'--out {out} is an existing file, not a folder')
    files = list(files)
    check_can_write(files)
    folders = [os.path.abspath(out)] + [os.path.dirname(os.path.abspath(f)) for f in files]
    for folder in dict.fromkeys(folders):
        while not os.path.exists(folder):
            folder = os.path.dirname(folder)
        _probe(folder)


def check_device(device: str) -> None:
    """Refuse a torch device string that is malformed or absent on this machine.

    Raises:
        ValueError: one line naming the device and what is available.
    """
    import torch
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f'--device {device}: not a torch device (use cpu, cuda or cuda:N)') from None
    if dev.type == 'cpu':
        return
    if dev.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f'--device {device}: no CUDA GPU is available here (use --device cpu)')
        if dev.index is not None and dev.index >= count:
            raise ValueError(f'--device {device}: there {"is" if count == 1 else "are"} only '
                             f'{count} CUDA GPU{"s" if count > 1 else ""} (cuda:0..cuda:{count - 1})')
        return
    if dev.type == 'mps' and torch.backends.mps.is_available():
        return
    raise ValueError(f'--device {device}: not available here (use cpu or cuda)')


def input_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be read as an image file (naming it), or None when it can be."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            return f'{path}: a symbolic link loop'
        if os.path.islink(path):
            return f'{path}: a dangling symbolic link (to {os.readlink(path)}, which does not exist)'
        return f'{path}: cannot read ({err.strerror or err})'
    if stat.S_ISDIR(mode) and path.rstrip('/').lower().endswith('.zarr'):
        return None  # an OME-Zarr image (custom_modules.data.slide_io)
    if not stat.S_ISREG(mode):
        return f'{path}: not a regular file'
    return None
