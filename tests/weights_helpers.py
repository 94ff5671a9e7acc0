"""What the tests of weight files share: random weights, renamed keys, a pickle that runs
code, and the converters' refusal of unsafe files."""
import os
import pickle
import re
from collections import OrderedDict

import torch

from conftest import call_tool


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def random_state(module: torch.nn.Module, seed: int = 0) -> OrderedDict:
    """``module``'s state dict with random values in its tensors (scalars kept)."""
    torch.manual_seed(seed)
    return OrderedDict((k, torch.randn_like(v.float()) if v.dim() else v)
                       for k, v in module.state_dict().items())


def renamed(state: dict, rules) -> OrderedDict:
    """``state`` under another network's key names (a converter's input, made from the output
    it should give): each key by the first ``(pattern, name)`` of ``rules`` whose pattern
    matches it whole; ``name(match)`` is the new key."""
    out = OrderedDict()
    for key, value in state.items():
        for pattern, name in rules:
            match = re.fullmatch(pattern, key)
            if match:
                out[name(match)] = value
                break
        else:
            raise KeyError(f'no rule renames {key}')
    return out


def check_refuses_unsafe_files(tool: str, tmp_path, *options) -> None:
    """``tool [options] SRC DST`` refuses garbage and a pickle of code: exit 2, one error
    line naming SRC, no code run and nothing written."""
    marker = tmp_path / 'code_ran'
    (tmp_path / 'garbage.pth').write_bytes(b'garbage')
    (tmp_path / 'evil.pth').write_bytes(pickle.dumps({'w': Payload(marker)}))
    for src in (tmp_path / 'garbage.pth', tmp_path / 'evil.pth'):
        proc = call_tool(tool, *options, src, tmp_path / 'out.pth', check=False)
        assert proc.returncode == 2 and proc.stderr.count('\n') == 1, proc.stderr
        assert proc.stderr == (f'error: {src}: not a state dict of tensors '
                               '(torch.load with weights_only refused it)\n')
    assert not marker.exists() and not list(tmp_path.glob('out.pth*'))
