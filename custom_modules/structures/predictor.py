"""The label-map predictor protocol, and predictors as mmengine models see them.

Every segmenter (Mask R-CNN, U-Net, the classical pipeline) and every wrapper
(test-time augmentation, tiles, ensembles, diameter rescaling) is a
:class:`LabelMapPredictor`: one method, one signature. A wrapper calls the
predictor it wraps through that method only, so wrappers nest in any order
(tiles of a TTA model, a TTA of a tiled model, an ensemble of both).
The helpers below turn an image into a detector batch, a test batch into
samples, and find the trained network inside its wrappers.
"""
from typing import Optional, Protocol, Tuple, runtime_checkable

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmengine.model import BaseTTAModel, is_model_wrapper

from custom_modules.structures.label_map import LabelMapPrediction, resize_label_map, to_sample

Shape = Optional[Tuple[int, int]]


@runtime_checkable
class LabelMapPredictor(Protocol):
    """What every model and wrapper implements (see the module doc)."""

    def predict_label_map(self, img: np.ndarray, out_shape: Shape = None,
                          raw: bool = False) -> LabelMapPrediction:
        """Predict one ``H x W x 3`` image (the test pipeline's model input).

        Args:
            img: the image.
            out_shape: the frame of the returned label map (default: the
                image's); a network pastes its masks at that size, a wrapper
                passes it down or resizes its result (nearest neighbour).
            raw: without the final post-processing (``min_area``, dilation):
                the input of a later merge, which post-processes once.
        """


def at_shape(pred: LabelMapPrediction, out_shape: Shape) -> LabelMapPrediction:
    """``pred`` in the frame ``out_shape`` (``None``: as it is); see :func:`resize_label_map`."""
    return pred if out_shape is None else resize_label_map(pred, tuple(out_shape))


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
