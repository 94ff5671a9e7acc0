"""Mask R-CNN as a label-map predictor (see :mod:`custom_modules.label_map`)."""
from typing import NamedTuple, Optional, Tuple

import numpy as np
import torch
from mmdet.models.detectors import MaskRCNN
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, SampleList

from .label_map import LabelMapPrediction, to_sample
from .postprocess import dilate_label_map, instances_to_label_map


class PostProcess(NamedTuple):
    """Post-processing settings (a misspelled key raises ``TypeError``).

    Attributes:
        min_area: smallest nucleus kept after overlap resolution, in pixels.
        dilation_radius: grow every nucleus by this many pixels into the
            background (0: off); the solution found it scores about like TTA.
    """
    min_area: int = 0
    dilation_radius: int = 0


def make_postprocess(cfg: Optional[dict]) -> PostProcess:
    """Build :class:`PostProcess` from a config dict (``None``: defaults)."""
    return PostProcess(**(cfg or {}))


def instances_to_prediction(sample: DetDataSample, min_area: int = 0,
                            score_thr: float = 0.0) -> LabelMapPrediction:
    """A detector's (overlapping) instance masks as a label-map prediction."""
    pred = sample.pred_instances
    shape = tuple(sample.ori_shape)
    if len(pred) == 0:
        return LabelMapPrediction.empty(shape)
    if pred.masks.shape[1:] != shape:
        raise ValueError('label maps need masks at the original image size (rescale=True)')
    label_map, kept = instances_to_label_map(pred.masks, pred.scores, min_area, score_thr)
    return LabelMapPrediction(label_map, pred.scores.detach().cpu().numpy()[kept],
                              pred.labels.detach().cpu().numpy()[kept])


def apply_postprocess(pred: LabelMapPrediction, post: PostProcess) -> LabelMapPrediction:
    """Dilation of a prediction whose overlaps and small nuclei are already gone."""
    return pred.replace(label_map=dilate_label_map(pred.label_map, post.dilation_radius))


def image_batch(img: np.ndarray, out_shape: Tuple[int, int]) -> dict:
    """One ``H x W x 3`` uint8 image as a detector batch predicted at ``out_shape``."""
    h, w = img.shape[:2]
    sample = DetDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=tuple(out_shape),
        scale_factor=(w / out_shape[1], h / out_shape[0])))
    inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    return dict(inputs=[inputs], data_samples=[sample])


@MODELS.register_module()
class NucleusMaskRCNN(MaskRCNN):
    """Mask R-CNN that predicts label maps, post-processed for the competition.

    Args:
        postprocess: ``dict(min_area=..., dilation_radius=...)``, see
            :class:`PostProcess`. Other arguments are MaskRCNN's.
    """

    def __init__(self, backbone: dict, rpn_head: dict, roi_head: dict, train_cfg: dict,
                 test_cfg: dict, neck: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None,
                 postprocess: Optional[dict] = None) -> None:
        super().__init__(backbone=backbone, rpn_head=rpn_head, roi_head=roi_head,
                         train_cfg=train_cfg, test_cfg=test_cfg, neck=neck,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.postprocess = make_postprocess(postprocess)

    @torch.no_grad()
    def predict_label_map(self, img: np.ndarray, out_shape: Optional[Tuple[int, int]] = None,
                          raw: bool = False) -> LabelMapPrediction:
        """Predict one image array (the pipeline's ``H x W x 3`` model input).

        Args:
            img: the image as the test pipeline feeds it.
            out_shape: predict masks at this size (default: the image's); a
                rescaled view is pasted back at its original size this way.
            raw: skip ``min_area`` and dilation (for TTA views, merged later).
        """
        out_shape = img.shape[:2] if out_shape is None else tuple(out_shape)
        data = self.data_preprocessor(image_batch(img, out_shape), False)
        sample = super().predict(data['inputs'], data['data_samples'], rescale=True)[0]
        if raw:
            return instances_to_prediction(sample)
        pred = instances_to_prediction(sample, self.postprocess.min_area)
        return apply_postprocess(pred, self.postprocess)

    def predict(self, batch_inputs: torch.Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        samples = super().predict(batch_inputs, batch_data_samples, rescale=rescale)
        if rescale:
            for sample in samples:
                pred = instances_to_prediction(sample, self.postprocess.min_area)
                to_sample(sample, apply_postprocess(pred, self.postprocess))
        return samples
