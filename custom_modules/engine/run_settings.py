"""What made a prediction's files: the settings recorded beside them, and reruns.

``tools/predict.py`` writes, with each image's files, ``DIR/run_settings/<name>.json``:
the model (config path and SHA-256, weights path and SHA-256) and every
option that changes the result (one key per option). A rerun skips an image
only when its recorded settings equal the run's; otherwise it is redone and
the summary says why (:func:`settings_change`).
"""
import hashlib
import json
import os
from typing import Dict, Optional, Sequence, Union

SETTINGS_FOLDER = 'run_settings'
SETTINGS_VERSION = 1


def file_sha256(path: Optional[str]) -> Optional[str]:
    """The SHA-256 (hex) of a file's bytes; None for no file."""
    if path is None:
        return None
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def make_settings(config: Optional[str], weights: Optional[str], options: Dict,
                  model_files: Sequence[str] = ()) -> Dict:
    """The settings of a run.

    Args:
        config: the model config file (None: a model given in Python).
        weights: the weights file (None: as ``config``).
        options: every option that changes the result, ``{name: value}``
            (JSON scalars); a new option joins by adding its key.
        model_files: other files the model reads (a shipped model's
            thresholds.json, an ensemble's members): recorded by content.
    """
    settings = dict(version=SETTINGS_VERSION,
                    config=os.path.abspath(config) if config else None,
                    config_sha256=file_sha256(config),
                    weights=os.path.abspath(weights) if weights else None,
                    weights_sha256=file_sha256(weights))
    if model_files:
        settings['model_files_sha256'] = {os.path.abspath(f): file_sha256(f) for f in model_files}
    settings.update(options)
    return settings


def result_options(page: int, tta: Optional[bool], tile: Optional[int],
                   diameter: Union[str, float, None], level: int = 0,
                   whole_slide: bool = False) -> Dict:
    """The options that change an image's result, as recorded, from ``tools/predict.py``
    and ``NucleusInferencer.predict_to_folder`` alike (``diameter`` parsed: ``'auto'``,
    pixels as a float, or None). ``level`` and ``whole_slide`` only when set (older
    records lack them)."""
    options = dict(page=page, tta=tta, tile=tile, diameter=diameter)
    options.update({k: v for k, v in (('level', level), ('whole_slide', whole_slide)) if v})
    return options


def settings_path(out: str, name: str) -> str:
    """Where the settings of image ``name`` are recorded."""
    return f'{out}/{SETTINGS_FOLDER}/{name}.json'


def settings_text(settings: Dict) -> str:
    """The JSON text recorded for ``settings``."""
    return json.dumps(settings, indent=1, sort_keys=True) + '\n'


def settings_change(path: str, settings: Dict) -> Optional[str]:
    """Why the outputs recorded at ``path`` do not fit ``settings``; None when they do.

    Weights moved or copied with the same content still fit (their hash
    decides); the config is compared by path and content, as its ``_base_``
    files are found from where it lies.

    Returns:
        e.g. ``'settings changed (tta, page)'`` or ``'no record of the settings'``.
    """
    try:
        with open(path) as f:
            recorded = json.load(f)
    except FileNotFoundError:
        return 'no record of the settings'
    except (OSError, UnicodeDecodeError, ValueError):
        return 'settings record unreadable'
    if not isinstance(recorded, dict):
        return 'settings record unreadable'
    changed = []
    for key in sorted(set(settings) | set(recorded)):
        if key == 'weights' and settings.get('weights_sha256'):
            continue  # the content decides, not where the file lies
        if recorded.get(key) != settings.get(key):
            changed.append(key.replace('_sha256', ''))
    return f'settings changed ({", ".join(dict.fromkeys(changed))})' if changed else None
