"""The nucleus dataset, its image loader and the stratum-balanced sampler."""
import json
import math
from typing import Iterator, Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.datasets import CocoDataset
from mmdet.registry import DATA_SAMPLERS, DATASETS, TRANSFORMS
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from .image_io import INPUT_MODES, read_image_file, to_model_input


@DATASETS.register_module()
class NucleusDataset(CocoDataset):
    """COCO JSON from ``data_prep`` with one class, ``nucleus``.

    Each data info also carries the image's ``stratum`` (kind/size, from
    data_prep), and ``metainfo['has_annotations']`` says whether the JSON is
    labelled, so the metric can skip images-only sets.
    """

    METAINFO = dict(classes=('nucleus', ), palette=[(220, 20, 60)])

    def load_data_list(self):
        with open(self.ann_file) as f:
            self._metainfo['has_annotations'] = 'annotations' in json.load(f)
        return super().load_data_list()

    def parse_data_info(self, raw_data_info: dict) -> dict:
        info = super().parse_data_info(raw_data_info)
        img = raw_data_info['raw_img_info']
        info['stratum'] = img.get('stratum', 'all')
        info['image_name'] = img.get('image_id', str(img['id']))
        return info


@TRANSFORMS.register_module()
class LoadNucleusImage(BaseTransform):
    """Load a DSB image as 3-channel uint8 BGR (see :mod:`image_io`).

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
    by ``1 / size of its stratum``; ranks take interleaved shares.

    Args:
        dataset: a dataset whose data infos carry ``stratum``.
        seed: random seed (synchronised across ranks when ``None``).
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

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        total = self.num_samples * self.world_size
        indices = torch.multinomial(self.weights, total, replacement=True, generator=gen)
        return iter(indices[self.rank::self.world_size].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
