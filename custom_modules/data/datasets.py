"""The nucleus dataset, its image loader and the stratum-balanced sampler."""
import colorsys
import json
import math
import random
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.datasets import CocoDataset
from mmdet.registry import DATA_SAMPLERS, DATASETS, TRANSFORMS
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from custom_modules.data.image_io import read_image_file
from custom_modules.data.intensity import INPUT_MODES, to_model_input

DEFAULT_CLASSES = ('nucleus', )


def mixed_seed(*keys: int) -> int:
    """A 32-bit seed mixed from non-negative integers (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([k % 2**32 for k in keys]).generate_state(1)[0])


class SeededDraw(NamedTuple):
    """One draw of a training image: its index and the seed of its augmentations."""
    index: int
    seed: int


def dataset_classes(categories, ann_file: str,
                    wanted: Optional[Sequence[str]] = None) -> Tuple[Tuple[str, ...], List[int]]:
    """The classes a dataset takes from a COCO JSON's categories, and their ids.

    Class ``i`` (MMDetection's label ``i``) is the ``i``-th category in the
    file's order (data_prep writes ids 1..K in order, so its id is ``i + 1``).

    Args:
        categories: the JSON's ``categories`` list.
        ann_file: the JSON, for messages.
        wanted: class names the config gives (``metainfo.classes``); ``None``
            or ``('nucleus',)``, the default, mean all categories. Others
            select a subset, kept in the file's order.

    Returns:
        ``(names, category_ids)``.

    Raises:
        ValueError: categories without names or ids, repeated ones, none at
            all, or wanted classes absent from the file, naming ``ann_file``.
    """
    try:
        pairs = [(str(c['name']), int(c['id'])) for c in categories]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f'{ann_file}: every category needs a name and an integer id') from None
    names = [n for n, _ in pairs]
    if not pairs or len(set(names)) < len(names) or len({i for _, i in pairs}) < len(pairs):
        raise ValueError(f'{ann_file}: categories must be a non-empty list of distinct names and '
                         f'ids, got {categories}')
    if wanted is not None and tuple(wanted) != DEFAULT_CLASSES:
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise ValueError(f'{ann_file}: metainfo classes {unknown} of the config are not among '
                             f'its categories {names}')
        pairs = [(n, i) for n, i in pairs if n in wanted]
    return tuple(n for n, _ in pairs), [i for _, i in pairs]


def class_palette(num: int) -> List[Tuple[int, int, int]]:
    """``num`` distinct RGB colours, the first the single-class crimson."""
    hues = [(0.97 + 0.618034 * k) % 1.0 for k in range(1, num)]
    return [(220, 20, 60)] + [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h, 0.85, 0.95))
                              for h in hues]


@DATASETS.register_module()
class NucleusDataset(CocoDataset):
    """COCO JSON from ``data_prep``; its classes are the JSON's categories.

    ``metainfo['classes']`` are the category names in the file's order
    (``('nucleus',)`` for a JSON without categories), ``metainfo['category_ids']``
    their ids; a config's ``metainfo.classes`` other than ``('nucleus',)``
    selects a subset (see :func:`dataset_classes`). Each data info also
    carries the image's ``stratum`` (kind/size, from data_prep), and
    ``metainfo['has_annotations']`` says whether the JSON is labelled, so the
    metric can skip images-only sets.
    """

    METAINFO = dict(classes=DEFAULT_CLASSES, palette=[(220, 20, 60)])

    def load_data_list(self):
        with open(self.ann_file) as f:
            coco = json.load(f)
        self._metainfo['has_annotations'] = 'annotations' in coco
        if coco.get('categories') is not None:
            names, ids = dataset_classes(coco['categories'], self.ann_file,
                                         self._metainfo.get('classes'))
            palette = list(self._metainfo.get('palette') or [])
            self._metainfo.update(classes=names, category_ids=ids,
                                  palette=palette if len(palette) >= len(names)
                                  else class_palette(len(names)))
        return super().load_data_list()

    def parse_data_info(self, raw_data_info: dict) -> dict:
        info = super().parse_data_info(raw_data_info)
        img = raw_data_info['raw_img_info']
        info['stratum'] = img.get('stratum', 'all')
        info['image_name'] = img.get('image_id', str(img['id']))
        return info

    def __getitem__(self, idx: Union[int, SeededDraw]) -> dict:
        """The image through the pipeline. A :class:`SeededDraw` first seeds numpy's and
        Python's generators (the transforms' draws): its augmentations then depend on the
        draw alone, not on the loader worker or on the draws loaded before it."""
        if isinstance(idx, SeededDraw):
            np.random.seed(idx.seed)
            random.seed(idx.seed)
            idx = idx.index
        return super().__getitem__(idx)


@TRANSFORMS.register_module()
class LoadNucleusImage(BaseTransform):
    """Load a DSB image as 3-channel uint8 BGR (see :mod:`~custom_modules.data.intensity`).

    Args:
        mode: ``'rgb'`` (colour kept) or ``'grey_dark'`` (luminance, bright
            backgrounds inverted, contrast stretched).

    Added keys: ``img``, ``img_shape``, ``ori_shape``, ``scale_factor``.
    """

    def __init__(self, mode: str = 'rgb') -> None:
        if mode not in INPUT_MODES:
            raise ValueError(f'mode must be one of {INPUT_MODES}, got {mode!r}')
        self.mode = mode

    def transform(self, results: dict) -> dict:
        img = to_model_input(read_image_file(results['img_path']), self.mode)
        results['img'] = img
        results['img_shape'] = results['ori_shape'] = img.shape[:2]
        results['scale_factor'] = (1.0, 1.0)  # no Resize at test time: the model sees the original
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(mode={self.mode!r})'


@DATA_SAMPLERS.register_module()
class StratumBalancedSampler(Sampler):
    """Sample images so that every stratum (image kind x size) is seen equally often.

    The solution's second training step oversampled rare image kinds. Each
    epoch draws ``len(dataset)`` indices with replacement, each image weighted
    by ``1 / size of its stratum``; ranks take interleaved shares. Each draw
    carries its own augmentation seed, mixed from (seed, epoch, position in
    the epoch) (:class:`SeededDraw`), so a run is the same whatever the loader
    workers, and a resumed run skips the draws it trained on without loading
    them (:meth:`skip`).

    Args:
        dataset: a dataset whose data infos carry ``stratum``.
        seed: random seed (synchronised across ranks when ``None``). MMEngine
            gives the run's seed; a resumed run's, restored later, replaces it
            (:class:`~custom_modules.engine.loops.ResumingIterBasedTrainLoop`).
    """

    def __init__(self, dataset, seed: Optional[int] = None) -> None:
        self.dataset = dataset
        self.rank, self.world_size = get_dist_info()
        self.seed = sync_random_seed() if seed is None else seed
        strata = [dataset.get_data_info(i).get('stratum', 'all') for i in range(len(dataset))]
        _, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
        self.weights = torch.as_tensor(1.0 / counts[inverse], dtype=torch.double)
        self.num_samples = math.ceil(len(dataset) / self.world_size)
        self.epoch = 0
        self._skip = 0

    def __iter__(self) -> Iterator[SeededDraw]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        total = self.num_samples * self.world_size
        indices = torch.multinomial(self.weights, total, replacement=True, generator=gen).tolist()
        positions = range(self.rank, total, self.world_size)[self._skip:]
        self._skip = 0
        return iter([SeededDraw(indices[p], mixed_seed(self.seed, self.epoch, p))
                     for p in positions])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, draws: int) -> None:
        """Start the next iteration ``draws`` draws into this rank's share of the epoch
        (the ones after it start at the beginning)."""
        self._skip = draws


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
