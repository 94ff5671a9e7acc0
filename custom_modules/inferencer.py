"""Segment nuclei in your own images from Python, like MMDetection's ``DetInferencer``.

    from custom_modules.inferencer import NucleusInferencer
    inferencer = NucleusInferencer()                      # the shipped model
    inferencer = NucleusInferencer('configs/dsb_mrcnn_cpu.py', 'best.pth', tta=True)
    result = inferencer('cells.tif')[0]
    result['label_map'], result['measurements']

Nothing is downloaded: the model is a local config and checkpoint.
"""
import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from .image_io import DEFAULT_MAX_PIXELS, check_pixels, read_any_image, to_model_input
from .label_map import LabelMapPrediction
from .measure import measure_nuclei

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = 'models/nucleiseg_default/config.py'
DEFAULT_WEIGHTS = 'models/nucleiseg_default/weights.pth'
DEFAULT_CLASSES = ('nucleus', )

Input = Union[str, np.ndarray]


def resolve_model(model: Optional[str], weights: Optional[str]):
    """The config and checkpoint paths to use (the shipped model when both are None).

    Raises:
        FileNotFoundError: a file is missing (for the shipped model, naming both).
        ValueError: only one of ``model`` and ``weights`` was given.
    """
    if model is None and weights is None:
        model, weights = (os.path.join(REPO_ROOT, p) for p in (DEFAULT_CONFIG, DEFAULT_WEIGHTS))
        if not (os.path.isfile(model) and os.path.isfile(weights)):
            raise FileNotFoundError(
                f'the default model is not installed ({model} and {weights}); '
                'pass a config and a checkpoint (--config/--checkpoint)')
        return model, weights
    if model is None or weights is None:
        raise ValueError('give both a config and a checkpoint (--config and --checkpoint), '
                         'or neither for the default model')
    for path in (model, weights):
        if not os.path.isfile(path):
            raise FileNotFoundError(f'{path}: no such file')
    return model, weights


def config_input_mode(cfg) -> str:
    """The ``mode`` of the test pipeline's ``LoadNucleusImage`` (``'rgb'`` without one)."""
    pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline', [])
    for step in pipeline:
        if step.get('type') == 'LoadNucleusImage':
            return step.get('mode', 'rgb')
    return 'rgb'


def config_class_names(cfg) -> Sequence[str]:
    """Class names of the config's test set (``('nucleus',)`` when it names none)."""
    metainfo = cfg.get('test_dataloader', {}).get('dataset', {}).get('metainfo', None) or {}
    return tuple(metainfo.get('classes', DEFAULT_CLASSES))


class NucleusInferencer:
    """Predict label maps and measurements for images (paths or arrays).

    Args:
        model: config path; ``None`` (with ``weights`` ``None``): the shipped model.
        weights: checkpoint path.
        tta: test-time augmentation (the config's ``tta_model``).
        tile: ``None``: the config's tiling; ``0``: never tile; ``N``: tiles of N.
        device: torch device, e.g. ``'cpu'`` or ``'cuda:0'``.
        max_pixels: refuse larger images (from the file header, before
            decoding); ``None`` or 0: no budget.
        trust_pickle: load a checkpoint that pickles more than data (its
            unpickling can run code); only for files you trust.
    """

    def __init__(self, model: Optional[str] = None, weights: Optional[str] = None,
                 tta: bool = False, tile: Optional[int] = None, device: str = 'cpu',
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 trust_pickle: bool = False) -> None:
        from mmengine.registry import init_default_scope
        from mmdet.registry import MODELS

        import custom_modules  # noqa: F401  (registers the project's modules)
        from .config_check import load_config
        from .inference import load_weights, predictor_cfg

        self.config_path, self.weights_path = resolve_model(model, weights)
        cfg = load_config(self.config_path)
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        net = MODELS.build(predictor_cfg(cfg, tta=tta, tile=tile))
        load_weights(net, self.weights_path, trust=trust_pickle)
        self._setup(net.to(device).eval(), config_input_mode(cfg), config_class_names(cfg),
                    max_pixels)

    @classmethod
    def from_predictor(cls, predictor, input_mode: str = 'rgb',
                       class_names: Sequence[str] = DEFAULT_CLASSES,
                       max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> 'NucleusInferencer':
        """Wrap any object with ``predict_label_map(img) -> LabelMapPrediction``.

        Args:
            predictor: e.g. a model built from :func:`~custom_modules.inference.predictor_cfg`.
            input_mode: how images are turned into its input (``image_io.INPUT_MODES``).
            class_names: names of its class indices.
            max_pixels: the pixel budget, as in the constructor.
        """
        self = cls.__new__(cls)
        self.config_path = self.weights_path = None
        self._setup(predictor, input_mode, class_names, max_pixels)
        return self

    def _setup(self, predictor, input_mode: str, class_names: Sequence[str],
               max_pixels: Optional[int]) -> None:
        self.predictor = predictor
        self.input_mode = input_mode
        self.class_names = tuple(class_names)
        self.max_pixels = max_pixels

    def predict(self, image: np.ndarray, image_path: Optional[str] = None) -> Dict:
        """One decoded image (as :func:`~custom_modules.image_io.read_any_image` gives it).

        Returns:
            ``label_map`` (H x W int32), ``scores``, ``classes`` (per label),
            ``measurements`` (a dict per nucleus) and ``image_path``.
        """
        height, width = image.shape[:2]
        check_pixels(image_path or 'image', f'{width} x {height}', height * width, self.max_pixels)
        with torch.no_grad():
            pred = self.predictor.predict_label_map(to_model_input(image, self.input_mode))
        pred = LabelMapPrediction(np.asarray(pred.label_map, np.int32), np.asarray(pred.scores),
                                  np.asarray(pred.classes)).check()
        if pred.label_map.shape != image.shape[:2]:
            raise ValueError(f'{image_path or "image"}: prediction is {pred.label_map.shape}, '
                             f'the image {image.shape[:2]}')
        return dict(label_map=pred.label_map, scores=pred.scores, classes=pred.classes,
                    measurements=measure_nuclei(pred, image, self.class_names),
                    image_path=image_path)

    def __call__(self, inputs: Union[Input, List[Input]], page: int = 0) -> List[Dict]:
        """Predict a path, an array (cv2 channel order), or a list of them.

        Args:
            inputs: image file path(s) or array(s).
            page: the page of multi-page TIFF files.

        Returns:
            One result dict per image (see :meth:`predict`).
        """
        if isinstance(inputs, (str, os.PathLike, np.ndarray)):
            inputs = [inputs]
        results = []
        for item in inputs:
            if isinstance(item, np.ndarray):
                results.append(self.predict(item))
            else:
                path = os.fspath(item)
                results.append(self.predict(read_any_image(path, page, self.max_pixels), path))
        return results
