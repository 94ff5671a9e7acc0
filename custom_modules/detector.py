"""Mask R-CNN whose predictions are post-processed for the competition."""
from typing import NamedTuple, Optional

import numpy as np
import torch
from mmdet.models.detectors import MaskRCNN
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, SampleList
from mmengine.structures import InstanceData

from .postprocess import (dilate_label_map, instances_to_label_map, label_map_to_masks,
                          masks_to_boxes)


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


def set_label_map_predictions(sample: DetDataSample, label_map: np.ndarray, scores: np.ndarray,
                              device='cpu') -> None:
    """Store a label map's instances as the sample's predictions.

    Label ``k`` becomes instance ``k - 1`` with score ``scores[k - 1]``, a
    tight box and class 0; the dense masks are built once, here.
    """
    masks = label_map_to_masks(label_map, len(scores))
    sample.pred_instances = InstanceData(
        masks=torch.from_numpy(masks).to(device),
        scores=torch.as_tensor(scores, dtype=torch.float32, device=device),
        labels=torch.zeros(len(scores), dtype=torch.long, device=device),
        bboxes=torch.from_numpy(masks_to_boxes(masks)).to(device))


def apply_postprocess(sample: DetDataSample, post: PostProcess, score_thr: float = 0.0) -> None:
    """Replace a sample's predictions by non-overlapping, filtered, dilated instances."""
    pred = sample.pred_instances
    if len(pred) == 0:
        return
    if pred.masks.shape[1:] != tuple(sample.ori_shape):
        raise ValueError('post-processing needs masks at the original image size (rescale=True)')
    label_map, kept = instances_to_label_map(pred.masks, pred.scores, post.min_area, score_thr)
    scores = pred.scores.detach().cpu().numpy()[kept]
    set_label_map_predictions(sample, dilate_label_map(label_map, post.dilation_radius), scores,
                              pred.scores.device)


@MODELS.register_module()
class NucleusMaskRCNN(MaskRCNN):
    """Mask R-CNN with the competition's post-processing on its predictions.

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

    def predict_raw(self, batch_inputs: torch.Tensor, batch_data_samples: SampleList,
                    rescale: bool = True) -> SampleList:
        """Mask R-CNN's own predictions, before post-processing (for TTA)."""
        return super().predict(batch_inputs, batch_data_samples, rescale=rescale)

    def predict(self, batch_inputs: torch.Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        samples = self.predict_raw(batch_inputs, batch_data_samples, rescale=rescale)
        if rescale:
            for sample in samples:
                apply_postprocess(sample, self.postprocess)
        return samples
