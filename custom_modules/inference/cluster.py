"""Prediction on a Dask cluster: each image a task, a large image a task per tile.

    client = start_client(workers=2)               # a local cluster of 2 processes
    client = start_client(scheduler='tcp://host:8786')  # workers started elsewhere

Workers build the model once (:func:`worker_model`, from a picklable
:class:`ModelSpec`) and return what the in-process path computes: an image's
output files (:func:`~custom_modules.inference.prediction_files.image_files`), or one
tile's prediction. An image that the model tiles is joined in the calling
process by the same code as in-process (:func:`~custom_modules.inference.tiling.predict_tiled`),
its tiles predicted on the workers (:class:`ClusterTileMap`): a worker holds a
tile, never the whole image. A worker that dies costs its tasks a rerun on
another worker (Dask reschedules them), not the run.
"""
import collections
import functools
import logging
from typing import Callable, Dict, Iterable, Iterator, NamedTuple, Optional, Union

import numpy as np

from custom_modules.data.slide_io import image_shape
from custom_modules.structures.label_map import LabelMapPrediction

_MODELS: Dict = {}  # per worker process: the last ModelSpec's inferencer


class ModelSpec(NamedTuple):
    """What a worker needs to build the inferencer (``NucleusInferencer``'s arguments)."""
    model: Optional[str] = None
    weights: Optional[str] = None
    tta: Union[bool, str] = False  # or a view set's name
    tile: Optional[int] = None
    device: str = 'cpu'
    diameter: Union[str, float, None] = 'auto'
    max_pixels: Optional[int] = None
    trust_pickle: bool = False

    def build(self):
        """A new ``NucleusInferencer`` for this spec."""
        from custom_modules.inference.inferencer import NucleusInferencer
        return NucleusInferencer(*self)


def start_client(workers: int = 0, scheduler: Optional[str] = None):
    """A Dask client: of the cluster at ``scheduler``, else of a new local one.

    A local cluster has ``workers`` processes of one thread each (Dask's nanny
    sets ``OMP_NUM_THREADS=1`` for them), no dashboard, and quiet logs.
    """
    from dask.distributed import Client, LocalCluster
    if scheduler:
        return Client(scheduler, timeout='30s')
    if workers < 1:
        raise ValueError(f'--workers {workers}: need at least 1')
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster)


def worker_model(spec: ModelSpec):
    """The inferencer of ``spec`` in this process, built on first use."""
    if spec not in _MODELS:
        _MODELS.clear()  # one model per worker at a time
        _MODELS[spec] = spec.build()
    return _MODELS[spec]


def tiled_wrapper(predictor):
    """The ``NucleusTiledModel`` inside a predictor's wrappers, or ``None``."""
    from custom_modules.inference.tiling import NucleusTiledModel
    while predictor is not None and not isinstance(predictor, NucleusTiledModel):
        predictor = getattr(predictor, 'module', None)
    return predictor


def image_files_task(spec: ModelSpec, path: str, page: int, out: str, settings: Dict,
                     imagej_roi: bool, geojson: bool, slide=None) -> Dict[str, object]:
    """On a worker: predict one image file and make its output files."""
    from custom_modules.inference.prediction_files import render_image
    return render_image(worker_model(spec), path, page, out, settings, imagej_roi, geojson,
                        slide=slide)


def predict_task(spec: ModelSpec, path: str, page: int) -> Dict:
    """On a worker: ``NucleusInferencer``'s result dict for one image file."""
    return worker_model(spec)([path], page)[0]


def tile_task(spec: ModelSpec, crop: np.ndarray) -> LabelMapPrediction:
    """On a worker: one tile's prediction by the network inside the tiles."""
    import torch
    with torch.no_grad():
        return tiled_wrapper(worker_model(spec).predictor).module.predict_label_map(crop)


class ClusterTileMap:
    """A ``map_tiles`` for :func:`~custom_modules.inference.tiling.predict_tiled` that predicts
    tiles on the cluster, at most ``window`` of them sent ahead of the join.

    Args:
        client: a Dask client.
        spec: the model the workers build.
        window: tiles in flight (their crops are held until their result is joined).
        progress: a tqdm bar counting tasks: each tile joins its total.
    """

    def __init__(self, client, spec: ModelSpec, window: int = 8, progress=None) -> None:
        self.client, self.spec, self.window, self.progress = client, spec, window, progress

    def __call__(self, predict, crops: Iterable[np.ndarray]) -> Iterator[LabelMapPrediction]:
        """Yield each crop's prediction in order (``predict`` is the workers' copy)."""
        pending = collections.deque()
        for crop in crops:
            pending.append(self.client.submit(tile_task, self.spec, crop, pure=False))
            if self.progress is not None:
                self.progress.total += 1
                self.progress.refresh()
            if len(pending) >= self.window:
                yield self._result(pending.popleft())
        while pending:
            yield self._result(pending.popleft())

    def _result(self, future) -> LabelMapPrediction:
        pred = future.result()
        _advance(self.progress)
        return pred


def cluster_map(client, inferencer, paths: Iterable[str], page: int, task: Callable,
                local: Callable, progress=None, level: int = 0) -> Iterator[tuple]:
    """Yield ``(path, result)`` or ``(path, exception)`` for each image file.

    Args:
        client: a Dask client.
        inferencer: a ``NucleusInferencer`` built from a model (its ``spec``).
        paths: image files.
        page: the page of multi-page TIFFs.
        task: ``task(spec, path)`` on a worker, for an image no larger than the
            model's tiles (e.g. a ``functools.partial`` of :func:`predict_task`).
        local: ``local(path)`` here, for a larger image: ``inferencer`` joins its
            tiles, the workers predicting them.
        progress: a tqdm bar that counts tasks (tiles join its total).
        level: the pyramid level of whole-slide images.
    """
    from dask.distributed import as_completed
    spec = getattr(inferencer, 'spec', None)
    if spec is None:
        raise ValueError('a cluster builds the model from its name or config: this inferencer '
                         'wraps a predictor (NucleusInferencer.from_predictor)')
    paths = list(paths)
    tiled = tiled_wrapper(inferencer.predictor)
    large = [p for p in paths if tiled is not None and _larger(p, page, level, tiled)]
    futures = {client.submit(task, spec, p, pure=False): p for p in paths if p not in large}
    if large:
        workers = max(1, len(client.scheduler_info()['workers']))
        serial, tiled.map_tiles = tiled.map_tiles, ClusterTileMap(client, spec, 2 * workers,
                                                                  progress)
        try:
            for path in large:
                try:
                    yield path, local(path)
                except Exception as err:  # noqa: BLE001  reported by name, the others go on
                    yield path, err
                _advance(progress)
        finally:
            tiled.map_tiles = serial
    for future in as_completed(futures):
        try:
            yield futures[future], future.result()
        except Exception as err:  # noqa: BLE001
            yield futures[future], err
        _advance(progress)


def cluster_files(client, inferencer, paths: Iterable[str], page: int, out: str,
                  settings: Dict, imagej_roi: bool = False, geojson: bool = False,
                  progress=None, slide=None) -> Iterator[tuple]:
    """``(path, files or exception)`` per image: ``tools/predict.py``'s files
    (:func:`~custom_modules.inference.prediction_files.render_image`) made on the cluster;
    ``slide``: its ``SlideOptions`` (a whole-slide image is joined here, as a larger one)."""
    from custom_modules.inference.prediction_files import render_image
    task = functools.partial(image_files_task, page=page, out=out, settings=settings,
                             imagej_roi=imagej_roi, geojson=geojson, slide=slide)
    return cluster_map(client, inferencer, paths, page, task, lambda path: render_image(
        inferencer, path, page, out, settings, imagej_roi, geojson, slide=slide), progress,
        slide.level if slide else 0)


def cluster_results(client, inferencer, paths: Iterable[str], page: int = 0,
                    progress=None) -> Iterator[tuple]:
    """``(path, result dict or exception)`` per image: ``NucleusInferencer``'s
    results (:meth:`~custom_modules.inference.inferencer.NucleusInferencer.predict`) on the cluster."""
    return cluster_map(client, inferencer, paths, page,
                       functools.partial(predict_task, page=page),
                       lambda path: inferencer([path], page)[0], progress)


def _larger(path: str, page: int, level: int, tiled) -> bool:
    """Whether the model cuts the image in tiles (from its header: the shape at ``level``
    of a whole-slide image)."""
    shape = image_shape(path, page, level)
    return shape is not None and len(shape) == 2 and bool(tiled.tiles_shape(*shape))


def _advance(progress) -> None:
    if progress is not None:
        progress.update(1)
