"""Writing output files all together or not at all (the repo's one implementation).

Every file is first written under a temporary name beside its target; only
when all were written are they renamed into place. On any failure the
temporary files, the files newly placed and the folders made are removed.
A process killed between writing and renaming (``kill -9``) leaves its
``<file>.<PID>.tmp`` files behind: the first write of a later process into
the same folder removes those whose PID no longer runs.
"""
import errno
import os
import re
import shutil
from typing import Dict, Iterable, List, Set, Union

Data = Union[str, bytes]
TMP_PATTERN = re.compile(r'^.+\.([0-9]+)\.tmp$')  # what write_all_or_nothing names them
_SWEPT: Set[str] = set()  # folders this process already swept for stale temporary files


def _pid_runs(pid: int) -> bool:
    """Whether a process with this PID exists (one of another user counts)."""
    if pid <= 0:
        return True  # not a PID we wrote: never treat it as dead
    try:
        os.kill(pid, 0)
    except OSError as err:
        return err.errno != errno.ESRCH
    return True


def remove_stale_temps(folder: str, folders: bool = False) -> List[str]:
    """Remove ``folder``'s ``<name>.<PID>.tmp`` files whose PID no longer runs.

    Only regular files matching the pattern :func:`write_all_or_nothing`
    uses are looked at (``folders``: only folders, e.g. an OME-Zarr written
    under a temporary name, removed with their contents); this process's own
    and a live process's are kept.

    Returns:
        The paths removed.
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = TMP_PATTERN.match(name)
        path = os.path.join(folder, name)
        if (not match or int(match.group(1)) == os.getpid() or _pid_runs(int(match.group(1)))
                or os.path.islink(path)
                or not (os.path.isdir(path) if folders else os.path.isfile(path))):
            continue
        try:
            if folders:
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(path)
        except OSError:
            pass  # gone meanwhile, or not ours to remove
    return removed


def _sweep_once(folders: Iterable[str]) -> None:
    """:func:`remove_stale_temps` in each existing folder, once per folder and process."""
    for folder in folders:
        if folder not in _SWEPT and os.path.isdir(folder):
            _SWEPT.add(folder)
            remove_stale_temps(folder)


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
    _sweep_once(dict.fromkeys(os.path.dirname(os.path.abspath(p)) for p in paths))
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
