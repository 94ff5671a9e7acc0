"""Writing output files all together or not at all (the repo's one implementation).

Every file is first written under a temporary name beside its target; only
when all were written are they renamed into place. On any failure the
temporary files, the files newly placed and the folders made are removed.
"""
import os
from typing import Dict, Iterable, List, Union

Data = Union[str, bytes]


def _existing_ancestor(folder: str) -> str:
    """The deepest existing folder (or file) on the way to ``folder``, as an absolute path."""
    folder = os.path.abspath(folder)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return folder


def check_can_write(paths: Iterable[str]) -> None:
    """Check, creating nothing, that every file in ``paths`` could be written.

    Raises:
        OSError: a folder in the way of a file, a file in the way of a folder,
            or a folder that is not writable; the message names it.
    """
    for path in paths:
        if os.path.isdir(path):
            raise OSError(f'{path}: a folder is in the way of an output file')
        folder = os.path.dirname(os.path.abspath(path))
        base = _existing_ancestor(folder)
        if not os.path.isdir(base):
            raise OSError(f'{base}: exists and is not a folder' if base == folder else
                          f'{base}: is a file, cannot make the output folder {folder}')
        if not os.access(base, os.W_OK | os.X_OK):
            raise OSError(f'{base}: output folder is not writable' if base == folder else
                          f'{base}: not writable, cannot make {folder} in it')


def _make_folders(folder: str, made: List[str]) -> None:
    """Make ``folder`` and its missing parents, appending each one made to ``made``."""
    missing = []
    folder = os.path.abspath(folder)
    while not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for path in reversed(missing):
        os.mkdir(path)
        made.append(path)


def write_all_or_nothing(outputs: Dict[str, Data]) -> List[str]:
    """Write every ``{path: text or bytes}``, or none of them.

    Missing folders are made. A rename that fails after every temporary file
    was written (the targets are checked beforehand) cannot bring back a file
    it already replaced; files that did not exist before are removed.

    Returns:
        The paths written, in the order given.

    Raises:
        OSError: naming the path that could not be written.
    """
    paths = list(outputs)
    check_can_write(paths)
    made, tmps, placed, existed, done = [], {}, [], set(), False
    try:
        for path in paths:
            _make_folders(os.path.dirname(os.path.abspath(path)), made)
        for path, data in outputs.items():
            tmps[path] = f'{path}.{os.getpid()}.tmp'
            with open(tmps[path], 'wb' if isinstance(data, bytes) else 'w') as f:
                f.write(data)
        existed = {path for path in paths if os.path.exists(path)}
        for path in paths:
            os.replace(tmps[path], path)
            placed.append(path)
        done = True
    finally:
        for tmp in tmps.values():
            if os.path.lexists(tmp):
                os.remove(tmp)
        if not done:
            for path in placed:
                if path not in existed:
                    os.remove(path)
            for folder in reversed(made):
                if os.path.isdir(folder) and not os.listdir(folder):
                    os.rmdir(folder)
    return paths


def write_atomic(path: str, data: Data) -> None:
    """Write one file atomically (see :func:`write_all_or_nothing`)."""
    write_all_or_nothing({path: data})
