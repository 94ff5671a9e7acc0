"""Segment nuclei in your own images from Python, like MMDetection's ``DetInferencer``.

    from custom_modules.inference.inferencer import NucleusInferencer
    inferencer = NucleusInferencer()                      # the default shipped model
    inferencer = NucleusInferencer('nucleiseg_mrcnn')   # a shipped model by name
    inferencer = NucleusInferencer('configs/dsb_mrcnn_cpu.py', 'best.pth', tta=True)
    result = inferencer('cells.tif')[0]
    result['label_map'], result['measurements']
    inferencer.predict_to_folder('scan.ome.tif', 'results', level=1)  # tools/predict.py's files

Nothing is downloaded: the model is a local config and checkpoint, or a shipped
model's folder (``custom_modules/inference/model_zoo.py``).
"""
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from custom_modules.data.datasets import DEFAULT_CLASSES, config_class_names, config_input_mode
from custom_modules.data.image_io import DEFAULT_MAX_PIXELS, check_pixels, read_any_image
from custom_modules.data.intensity import to_model_input
from custom_modules.evaluation.measure import measure_nuclei
from custom_modules.inference import model_zoo
from custom_modules.structures.label_map import LabelMapPrediction

Input = Union[str, np.ndarray]


def resolve_model(model: Optional[str], weights: Optional[str]) -> Tuple[str, str]:
    """The config and weights paths to use.

    Args:
        model: a shipped model's name (``model_zoo/<name>/``), a model folder, or
            a config path; ``None`` with ``weights`` ``None``: the default model.
        weights: a checkpoint for the config ``model`` (none for a shipped model).

    Raises:
        FileNotFoundError: a file is missing (for the default model, naming its folder).
        ValueError: an unknown model name, or a config without weights (or the reverse).
    """
    if model is None and weights is None:
        folder = os.path.join(model_zoo.MODELS_DIR, model_zoo.DEFAULT_MODEL)
        if not model_zoo.is_model_folder(folder):
            raise FileNotFoundError(
                f'the default model is not installed ({folder}/ lacks {model_zoo.CONFIG} or '
                f'{model_zoo.WEIGHTS}); pass a config and a checkpoint (--config/--checkpoint)')
        model = folder
    if model is not None and (os.path.isdir(model) or model_zoo.looks_like_name(model)):
        if weights is not None:
            raise ValueError(f'{model} is a shipped model and brings its weights: give it '
                             'alone, or a config with a checkpoint (--config and --checkpoint)')
        if not os.path.isdir(model):
            return model_zoo.model_files(model)
        if not model_zoo.is_model_folder(model):
            raise ValueError(f'{model}: not a model folder (it needs {model_zoo.CONFIG} and '
                             f'{model_zoo.WEIGHTS})')
        return os.path.join(model, model_zoo.CONFIG), os.path.join(model, model_zoo.WEIGHTS)
    if model is None or weights is None:
        raise ValueError('give both a config and a checkpoint (--config and --checkpoint), '
                         'a shipped model (--model NAME), or neither for the default model')
    for path in (model, weights):
        if not os.path.isfile(path):
            raise FileNotFoundError(f'{path}: no such file')
    return model, weights


class NucleusInferencer:
    """Predict label maps and measurements for images (paths or arrays).

    Args:
        model: a shipped model's name or folder, or a config path; ``None``
            (with ``weights`` ``None``): the default shipped model.
        weights: checkpoint path, for a config path only.
        tta: test-time augmentation (the config's ``tta_model``); a name such as
            ``'full'``: with the config's view set ``tta_views_<name>``.
        tile: ``None``: the config's tiling; ``0``: never tile; ``N``: tiles of N.
        device: torch device, e.g. ``'cpu'`` or ``'cuda:0'``.
        diameter: ``'auto'`` (default): estimate each image's nucleus diameter
            and rescale it to the size the model was trained at; a number: the
            nuclei's diameter in pixels; ``None``: predict images as they are.
        max_pixels: refuse larger images (from the file header, before
            decoding); ``None`` or 0: no budget.
        trust_pickle: load a checkpoint that pickles more than data (its
            unpickling can run code); only for files you trust.
    """

    def __init__(self, model: Optional[str] = None, weights: Optional[str] = None,
                 tta: Union[bool, str] = False, tile: Optional[int] = None, device: str = 'cpu',
                 diameter: Union[str, float, None] = 'auto',
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 trust_pickle: bool = False) -> None:
        self.config_path, self.weights_path = resolve_model(model, weights)
        from custom_modules.inference.cluster import ModelSpec
        from custom_modules.inference.diameter import parse_diameter
        diameter = parse_diameter(diameter)  # '20' and 20 alike, in run records too
        self.spec = ModelSpec(model, weights, tta, tile, device, diameter, max_pixels,
                              trust_pickle)  # what a Dask worker builds the same model from
        from mmengine.registry import init_default_scope
        from mmdet.registry import MODELS

        from custom_modules.inference.builder import load_weights, predictor_cfg
        from custom_modules.inference.model_zoo import load_config

        cfg = load_config(self.config_path)
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        net = MODELS.build(predictor_cfg(cfg, tta=tta, tile=tile, diameter=diameter))
        load_weights(net, self.weights_path, trust=trust_pickle)
        self._setup(net.to(device).eval(), config_input_mode(cfg), config_class_names(cfg),
                    max_pixels)

    @classmethod
    def from_predictor(cls, predictor, input_mode: str = 'rgb',
                       class_names: Sequence[str] = DEFAULT_CLASSES,
                       max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> 'NucleusInferencer':
        """Wrap any object with ``predict_label_map(img) -> LabelMapPrediction``.

        Args:
            predictor: e.g. a model built from
                :func:`~custom_modules.inference.builder.predictor_cfg`.
            input_mode: how images are turned into its input (``intensity.INPUT_MODES``).
            class_names: names of its class indices.
            max_pixels: the pixel budget, as in the constructor.
        """
        self = cls.__new__(cls)
        self.config_path = self.weights_path = self.spec = None
        self._setup(predictor, input_mode, class_names, max_pixels)
        return self

    def _setup(self, predictor, input_mode: str, class_names: Sequence[str],
               max_pixels: Optional[int]) -> None:
        self.predictor = predictor
        self.input_mode = input_mode
        self.class_names = tuple(class_names)
        self.max_pixels = max_pixels

    def predict(self, image: np.ndarray, image_path: Optional[str] = None) -> Dict:
        """One decoded image (as :func:`~custom_modules.data.image_io.read_any_image` gives it).

        Returns:
            ``label_map`` (H x W int32), ``scores``, ``classes`` (per label),
            ``measurements`` (a dict per nucleus), ``image_path`` and
            ``diameter`` (the nuclei's estimated or given diameter in pixels;
            NaN when not rescaling or none were found).
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
                    image_path=image_path, diameter=self.last_diameter())

    def last_diameter(self) -> float:
        """The nucleus diameter the last prediction used (NaN without rescaling)."""
        estimate = getattr(self.predictor, 'last_estimate', None)
        return float('nan') if estimate is None else float(estimate.diameter)

    def run_settings(self, options: Dict) -> Dict:
        """What made an image's files (recorded beside them): this model's config, weights
        and every other file it reads (:func:`model_zoo.loaded_files`), and ``options``."""
        from custom_modules.engine.run_settings import make_settings
        return make_settings(self.config_path, self.weights_path, options,
                             model_zoo.loaded_files(self.config_path))

    def predict_to_folder(self, path: str, out: str, page: int = 0, level: int = 0,
                          whole_slide: bool = False, imagej_roi: bool = False,
                          geojson: bool = False) -> List[str]:
        """Predict one image file and write, all or none, the files ``tools/predict.py``
        writes for it under ``out`` (by the same function); return their paths.

        A whole-slide image (an OME-Zarr, any image above 64 Mpx, a pyramid
        ``level`` above 0, any image larger than a tile with ``whole_slide``:
        ``--level``, ``--whole-slide``) is predicted tile by tile into
        ``out/labels/NAME.ome.zarr``, never whole in memory.
        """
        from custom_modules.data.slide_io import SlideOptions
        from custom_modules.inference.prediction_files import render_image, write_image_files
        from custom_modules.engine.run_settings import result_options
        spec = self.spec  # None: a predictor given in Python (its options unknown)
        tta, tile, diameter = (spec.tta, spec.tile, spec.diameter) if spec else (None, ) * 3
        settings = self.run_settings(result_options(page, tta, tile, diameter, level, whole_slide))
        files = render_image(self, os.fspath(path), page, os.fspath(out), settings, imagej_roi,
                             geojson, slide=SlideOptions(level, whole_slide))
        write_image_files(os.fspath(out), os.fspath(path), files)
        return list(files)

    def __call__(self, inputs: Union[Input, List[Input]], page: int = 0,
                 client=None) -> List[Dict]:
        """Predict a path, an array (cv2 channel order), or a list of them.

        Args:
            inputs: image file path(s) or array(s).
            page: the page of multi-page TIFFs.
            client: a Dask client (:func:`~custom_modules.inference.cluster.start_client`):
                image files are predicted on its workers (arrays here).

        Returns:
            One result dict per image, in order (see :meth:`predict`).
        """
        if isinstance(inputs, (str, os.PathLike, np.ndarray)):
            inputs = [inputs]
        inputs = [item if isinstance(item, np.ndarray) else os.fspath(item) for item in inputs]
        clustered = {}
        if client is not None:
            from custom_modules.inference.cluster import cluster_results
            paths = [item for item in inputs if isinstance(item, str)]
            clustered = dict(cluster_results(client, self, dict.fromkeys(paths), page))
        results = []
        for item in inputs:
            if isinstance(item, np.ndarray):
                results.append(self.predict(item))
            elif item in clustered:
                if isinstance(clustered[item], Exception):
                    raise clustered[item]
                results.append(clustered[item])
            else:
                results.append(self.predict(read_any_image(item, page, self.max_pixels), item))
        return results
