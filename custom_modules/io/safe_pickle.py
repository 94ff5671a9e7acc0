"""Reading pickles without running code from them.

A pickle names the functions that unpickling calls, so a crafted file can call
``os.system``. :func:`load_pickle` resolves only the names listed in
:data:`SAFE_GLOBALS` (built-in containers and numbers, numpy arrays, dtypes
and scalars, torch tensors) and those a caller adds; any other name is
refused with one line naming the file and the name, before it is imported.
A torch storage inside a pickle is itself a ``torch.save`` file: it is read
with ``torch.load(weights_only=True)``.
"""
import _compat_pickle
import io
import pickle
from typing import Tuple

TRUST_HINT = 'pass --trust-pickle if you trust this file'
BUILTINS = ('bool', 'bytearray', 'bytes', 'complex', 'dict', 'float', 'frozenset', 'int',
            'list', 'range', 'set', 'slice', 'str', 'tuple')
SAFE_GLOBALS = {('builtins', name) for name in BUILTINS} | {
    ('collections', 'OrderedDict'), ('collections', 'Counter'),
    ('_codecs', 'encode'),  # bytes in protocol 2
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('numpy.core.multiarray', '_reconstruct'), ('numpy.core.multiarray', 'scalar'),
    ('numpy._core.multiarray', '_reconstruct'), ('numpy._core.multiarray', 'scalar'),
    ('numpy.core.numeric', '_frombuffer'), ('numpy._core.numeric', '_frombuffer'),  # protocol 5
    ('torch._utils', '_rebuild_tensor_v2'), ('torch._utils', '_rebuild_tensor'),
}


class UnsafePickleError(ValueError):
    """A pickle that names something other than data; the message names the file."""


def _load_storage_from_bytes(data: bytes):
    """``torch.storage._load_from_bytes`` without code execution (weights only)."""
    import torch
    return torch.load(io.BytesIO(data), weights_only=True)


REPLACED = {('torch.storage', '_load_from_bytes'): _load_storage_from_bytes}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allowed ``(module, name)`` globals.

    Args:
        file: the open binary file.
        path: its name, for messages.
        extra: further allowed ``(module, name)`` pairs.
    """

    def __init__(self, file, path: str, extra: Tuple[Tuple[str, str], ...] = ()) -> None:
        super().__init__(file)
        self.path = path
        self.allowed = SAFE_GLOBALS | set(extra)

    def find_class(self, module: str, name: str):
        # Python 2 names (protocols < 3), mapped as pickle.Unpickler maps them
        module, name = _compat_pickle.NAME_MAPPING.get(
            (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
        if (module, name) in REPLACED:
            return REPLACED[(module, name)]
        if (module, name) not in self.allowed:
            raise UnsafePickleError(f'{self.path}: refusing to unpickle {module}.{name} (a pickle '
                                    f'can run code when loaded; it holds more than data); '
                                    f'{TRUST_HINT}')
        return super().find_class(module, name)

    def persistent_load(self, pid):
        raise UnsafePickleError(f'{self.path}: refusing a persistent id in the pickle; '
                                f'{TRUST_HINT}')


def load_pickle(path: str, trust: bool = False, extra: Tuple[Tuple[str, str], ...] = ()):
    """Unpickle ``path``, allowing only data types unless ``trust``.

    Args:
        path: the pickle file.
        trust: allow any object (the file can run code).
        extra: further allowed ``(module, name)`` globals (e.g. a NamedTuple).

    Raises:
        UnsafePickleError: the file names a global outside the allowed set.
        OSError, pickle.UnpicklingError, EOFError, ...: as ``pickle.load``.
    """
    with open(path, 'rb') as f:
        if trust:
            return pickle.load(f)
        return RestrictedUnpickler(f, path, extra).load()

