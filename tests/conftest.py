"""Synthetic DSB-style data for the tests (no real data needed), and the tools run in-process."""
import copy
import importlib
import importlib.util
import io
import os
import os.path as osp
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmdet.utils import register_all_modules

import custom_modules  # noqa: F401  (registers the project's modules)

register_all_modules(init_default_scope=True)  # mmdet scope, as the configs set it

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DSB_ROOT = osp.join(REPO, '..', 'shared', 'dsb2018')
needs_dsb = pytest.mark.skipif(
    not osp.isdir(osp.join(DSB_ROOT, 'stage1_train')),
    reason=f'real data absent: {osp.normpath(DSB_ROOT)}/stage1_train not found')


def random_label_map(rng, shape=(64, 80), num=6, radius=(4, 9)) -> np.ndarray:
    """Non-overlapping discs labelled 1..K (later discs do not cover earlier)."""
    label = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    k = 0
    for _ in range(num):
        cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        r = rng.integers(*radius)
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (label == 0)
        if disc.sum() >= 8:
            k += 1
            label[disc] = k
    return label


def render(label: np.ndarray, rng, colour=False, bright=False) -> np.ndarray:
    """An 8-bit BGRA image with nuclei bright on dark (or the reverse)."""
    base = np.where(label > 0, 200, 30).astype(np.float32) + rng.normal(0, 5, label.shape)
    if bright:
        base = 255 - base
    img = np.clip(base, 0, 255).astype(np.uint8)
    bgr = np.stack([img, img // 2 + 60, img], -1) if colour else np.stack([img] * 3, -1)
    return np.concatenate([bgr, np.full(label.shape + (1, ), 255, np.uint8)], -1)


def write_layout(root, label_maps, images=None, rng=None):
    """Write images/masks in the competition layout; return the ImageIds."""
    rng = rng or np.random.default_rng(0)
    ids = []
    for i, label in enumerate(label_maps):
        image_id = f'img{i:03d}'
        os.makedirs(osp.join(root, image_id, 'images'))
        os.makedirs(osp.join(root, image_id, 'masks'))
        img = images[i] if images is not None else render(label, rng, colour=i % 3 == 2)
        cv2.imwrite(osp.join(root, image_id, 'images', image_id + '.png'), img)
        for k in range(1, int(label.max()) + 1):
            cv2.imwrite(osp.join(root, image_id, 'masks', f'm{k:03d}.png'),
                        ((label == k) * 255).astype(np.uint8))
        ids.append(image_id)
    return ids


def run_tool(*args, check=True):
    """Run a repo script with the current interpreter; return the CompletedProcess.

    A cold import each time (seconds): for tests of the command line itself. Others
    use :func:`call_tool`.
    """
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}')
    return proc


_TOOLS = {}


def load_tool(path: str):
    """The module of a repo script (``tools/train.py``), imported once per session.

    A script in a package (``data_prep/prepare_dsb.py``) is imported by its dotted name.
    Others are registered under ``_tool_<folder>_<name>`` (a worker process unpickles
    their functions by it), with their folder on ``sys.path`` while they import, as for
    ``python SCRIPT`` (a bench script imports another).
    """
    if path not in _TOOLS:
        folder, name = osp.split(osp.splitext(path)[0])
        if osp.isfile(osp.join(REPO, folder, '__init__.py')):
            _TOOLS[path] = importlib.import_module(f'{folder.replace("/", ".")}.{name}')
            return _TOOLS[path]
        module_name = f'_tool_{folder.replace("/", "_")}_{name}'
        spec = importlib.util.spec_from_file_location(module_name, osp.join(REPO, path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        sys.path.insert(0, osp.join(REPO, folder))
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        finally:
            sys.path.pop(0)
        _TOOLS[path] = module
    return _TOOLS[path]


class _ToolStream(io.StringIO):
    """A tool's stdout or stderr while it runs; afterwards, whatever ``sys`` has then.

    Loggers made during the call (mmengine's, one per runner) keep this stream: a
    later call that logs through one still has its lines captured.
    """

    def __init__(self, name: str):
        super().__init__()
        self.name, self.live = name, True

    def write(self, text):
        return super().write(text) if self.live else getattr(sys, self.name).write(text)


def call_tool(path, *args, check=True) -> subprocess.CompletedProcess:
    """:func:`run_tool` in this process: the script's ``main(argv)``, its output captured.

    The exit code is what ``main`` returns or raises (argparse's ``SystemExit(2)``); an
    exception escapes as it would print a traceback. The cwd is the repo, as for
    :func:`run_tool`, and ``--trust-pickle`` does not outlast the call.
    """
    from custom_modules.engine.checkpoint import trust_pickled_code
    argv = [str(a) for a in args]
    out, err = _ToolStream('stdout'), _ToolStream('stderr')
    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = load_tool(path).main(argv)
            except SystemExit as exc:  # sys.exit(CODE | None | 'message')
                code = exc.code if isinstance(exc.code, int) or exc.code is None else 1
                if not isinstance(exc.code, int) and exc.code is not None:
                    print(exc.code, file=sys.stderr)
    except Exception:  # shown with the test's failure, as run_tool shows a traceback
        print(f'{path} {argv} raised; its output:\n{out.getvalue()}{err.getvalue()}',
              file=sys.stderr)
        raise
    finally:
        os.chdir(cwd)
        trust_pickled_code(False)  # the process's default
        out.live = err.live = False
    proc = subprocess.CompletedProcess([path, *argv], code or 0, out.getvalue(), err.getvalue())
    if check and proc.returncode != 0:
        raise AssertionError(f'{path} {argv} failed ({proc.returncode}):\n{proc.stdout}\n'
                             f'{proc.stderr}')
    return proc


def write_synthetic_set(src: str) -> dict:
    """Eight labelled images in the competition layout at ``src``; ``{ImageId: label map}``."""
    rng = np.random.default_rng(1)
    labels = [random_label_map(rng, shape=(64 + 8 * (i % 2), 80)) for i in range(8)]
    ids = write_layout(src, labels, rng=rng)
    return dict(zip(ids, labels))


@pytest.fixture
def synthetic_set(tmp_path):
    """Eight labelled images in the competition layout and their label maps (a test may
    change them)."""
    src = str(tmp_path / 'stage1_train')
    return src, write_synthetic_set(src)


@pytest.fixture(scope='session')
def prepared_set(tmp_path_factory):
    """The synthetic set and data_prep's output, made once a session: read, never change.

    ``root/stage1_train`` (the images), ``root/ann`` (``--folds 2``: train_fold0.json
    four images, val_fold0.json four) and ``root/images_only/full.json``.
    """
    root = tmp_path_factory.mktemp('prepared')
    src = str(root / 'stage1_train')
    labels = write_synthetic_set(src)
    call_tool('data_prep/prepare_dsb.py', src, root / 'ann', '--folds', '2', '--workers', '1')
    call_tool('data_prep/prepare_dsb.py', src, root / 'images_only', '--images-only',
              '--workers', '1')
    return SimpleNamespace(root=root, src=src, ann=root / 'ann', labels=labels,
                           images_only=root / 'images_only' / 'full.json')


@pytest.fixture(scope='session')
def smoke_checkpoints(tmp_path_factory):
    """Untrained smoke models' weights (``torch.manual_seed(0)``), saved once a session.

    ``{'mrcnn': path, 'unet': path}`` for configs/dsb_mrcnn_smoke.py and dsb_unet_smoke.py.
    """
    from mmdet.registry import MODELS
    from mmengine.config import Config
    root = tmp_path_factory.mktemp('smoke_checkpoints')
    paths = {}
    for name in ('mrcnn', 'unet'):
        torch.manual_seed(0)
        paths[name] = str(root / f'{name}.pth')
        config = Config.fromfile(osp.join(REPO, 'configs', f'dsb_{name}_smoke.py'))
        model = MODELS.build(config.model)
        torch.save({'state_dict': model.state_dict()}, paths[name])
    return paths


@pytest.fixture(scope='module')
def parse_configs_once():
    """``Config.fromfile`` parses each config file once in the module (a parse of an
    mmdet-based config costs ~0.6 CPU s); every call, ``load_config``'s too, gets its own
    deep copy, and a file rewritten since (size or mtime) is parsed again."""
    from mmengine.config import Config
    fromfile, parsed = Config.fromfile, {}

    def parse_once(filename, *args, **kwargs):
        if not osp.isfile(filename):  # mmengine's own error
            return fromfile(filename, *args, **kwargs)
        stat = os.stat(filename)
        key = (osp.abspath(filename), stat.st_mtime_ns, stat.st_size, args,
               tuple(sorted(kwargs.items())))
        if key not in parsed:
            parsed[key] = fromfile(filename, *args, **kwargs)
        return copy.deepcopy(parsed[key])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Config, 'fromfile', staticmethod(parse_once))
        yield
