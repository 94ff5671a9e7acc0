"""Label-map predictors as mmengine models see them: batches in, samples out.

Every segmenter and wrapper predicts one image at a time with
``predict_label_map`` (see :mod:`custom_modules.structures.label_map`); these
helpers turn an image into a detector batch, a test batch into samples, and
find the trained network inside its wrappers.
"""
from typing import Tuple

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmengine.model import BaseTTAModel, is_model_wrapper

from custom_modules.structures.label_map import to_sample


def image_batch(img: np.ndarray, out_shape: Tuple[int, int]) -> dict:
    """One ``H x W x 3`` uint8 image as a detector batch predicted at ``out_shape``."""
    h, w = img.shape[:2]
    sample = DetDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=tuple(out_shape),
        scale_factor=(w / out_shape[1], h / out_shape[0])))
    inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    return dict(inputs=[inputs], data_samples=[sample])


def predict_batch(predictor, data: dict) -> list:
    """Run ``predictor.predict_label_map`` on every image of a raw test batch."""
    samples = []
    for inputs, sample in zip(data['inputs'], data['data_samples']):
        img = inputs.permute(1, 2, 0).cpu().numpy()
        if img.shape[:2] != tuple(sample.ori_shape):
            raise ValueError(f'{sample.img_path}: the test pipeline resized the image; '
                             'label-map predictors need it at its original size')
        to_sample(sample, predictor.predict_label_map(img))
        samples.append(sample)
    return samples


def innermost(model):
    """The trained network inside DDP, TTA and tiling wrappers."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model
