"""Detections as a label map: soft masks, per-class cut-offs, post-processing.

:class:`SoftInstances` holds one image's detections with soft masks (mask
probability x 255, truncated to uint8, cropped to the box, as MMDetection's
``mask_thr_binary < 0`` gives them). Thresholds may differ per class: one
number for all classes or one per class. A class's mask threshold cuts its
soft masks: a pixel is in when its uint8 value is at least ``ceil(255 * thr)``
(thresholds act at a 1/255 resolution). The detector, the TTA model and
``tools/tune_thresholds.py`` all paint label maps here, so what the tuner
scores is what the model predicts.
"""
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmdet.structures import DetDataSample

from custom_modules.structures.label_map import LabelMapPrediction
from custom_modules.structures.label_ops import dilate_label_map, relabel

Thr = Union[float, Sequence[float], np.ndarray]


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


class SoftInstances(NamedTuple):
    """One image's detections with soft masks cropped to their boxes.

    Attributes:
        shape: ``(H, W)`` of the frame the masks are pasted in.
        scores: ``N`` float32 scores.
        classes: ``N`` int64 classes (0-based).
        boxes: ``N x 4`` int32 crops ``y0, x0, y1, x1`` (exclusive ends).
        masks: the ``N`` uint8 crops (mask probability x 255), each raveled,
            one after the other.
    """
    shape: Tuple[int, int]
    scores: np.ndarray
    classes: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def from_dense(cls, masks, scores, classes) -> 'SoftInstances':
        """From ``N x H x W`` masks: boolean (in: 255) or uint8 soft masks."""
        masks = np.asarray(masks.cpu() if isinstance(masks, torch.Tensor) else masks)
        masks = masks.astype(np.uint8) * (255 if masks.dtype == bool else 1)
        n, h, w = masks.shape
        return cls((h, w), np.asarray(scores, np.float32).reshape(n),
                   np.asarray(classes, np.int64).reshape(n),
                   np.tile(np.array([[0, 0, h, w]], np.int32), (n, 1)), masks.ravel())


def per_class(value: Thr, classes: np.ndarray, key: str) -> np.ndarray:
    """A threshold of each instance: ``value`` (one number) or ``value[class]``."""
    values = np.asarray(value, np.float64)
    if values.ndim == 0:
        return np.full(len(classes), float(values))
    if len(classes) and classes.max() >= len(values):
        raise ValueError(f'{key} gives {len(values)} values; class {classes.max()} has none')
    return values[classes]


def mask_cut(thr: np.ndarray) -> np.ndarray:
    """The uint8 value a soft mask pixel needs to be in, for thresholds in (0, 1]."""
    return np.clip(np.ceil(np.asarray(thr) * 255 - 1e-6), 1, 255).astype(np.uint8)


def select_instances(scores: np.ndarray, classes: np.ndarray, score_thr: Optional[Thr] = None,
                     max_per_img: int = 0) -> np.ndarray:
    """Indices of the instances scoring above their class's threshold, best first.

    Ties keep the input order; ``max_per_img > 0`` keeps that many at most.
    """
    order = np.argsort(-np.asarray(scores, np.float64), kind='stable')
    if score_thr is not None:
        order = order[scores[order] > per_class(score_thr, classes[order], 'score_thr')]
    return order[:max_per_img] if max_per_img > 0 else order


def paint_instances(inst: SoftInstances, idx: np.ndarray, cuts: np.ndarray,
                    min_area: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Label map of instances ``idx`` (best first), ``inst.masks >= cuts`` each.

    A pixel goes to the first instance of ``idx`` that has it; labels under
    ``min_area`` go. Returns ``(label_map, kept)`` as ``instances_to_label_map``.
    """
    h, w = inst.shape
    all_sizes = np.prod(inst.boxes[:, 2:].astype(np.int64) - inst.boxes[:, :2], axis=1)
    starts = (np.cumsum(all_sizes) - all_sizes)[idx]  # where each crop begins in inst.masks
    boxes, sizes = inst.boxes[idx].astype(np.int64), all_sizes[idx]
    widths = boxes[:, 3] - boxes[:, 1]
    rank = np.repeat(np.arange(len(idx)), sizes)  # every crop pixel: its rank, its offset
    local = np.arange(len(rank)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    on = inst.masks[np.repeat(starts, sizes) + local] >= np.repeat(np.asarray(cuts, np.uint8),
                                                                    sizes)
    rank, local = rank[on], local[on]
    pix = (boxes[rank, 0] + local // widths[rank]) * w + boxes[rank, 1] + local % widths[rank]
    flat = np.full(h * w, len(idx), np.int64)
    np.minimum.at(flat, pix, rank)  # the best instance on each pixel
    label_map = np.where(flat == len(idx), 0, flat + 1).astype(np.int32).reshape(h, w)
    return relabel(label_map, np.asarray(idx, np.int64), min_area)


def instances_to_prediction(inst: Union[SoftInstances, DetDataSample], min_area: int = 0,
                            score_thr: Optional[Thr] = None, mask_thr: Thr = 0.5,
                            max_per_img: int = 0) -> LabelMapPrediction:
    """Detections (overlapping soft or boolean masks) as a label-map prediction.

    Args:
        inst: :class:`SoftInstances`, or a data sample whose ``pred_instances``
            have dense masks at the original size (boolean, or uint8 soft).
        min_area: smallest nucleus kept after overlap resolution.
        score_thr: keep instances scoring above it (one number, or one per
            class); ``None``: all.
        mask_thr: mask threshold in (0, 1], one number or one per class.
        max_per_img: keep the best so many (0: all).
    """
    if isinstance(inst, DetDataSample):
        pred, shape = inst.pred_instances, tuple(inst.ori_shape)[:2]
        if len(pred) == 0:
            return LabelMapPrediction.empty(shape)
        if tuple(pred.masks.shape[1:]) != shape:
            raise ValueError('label maps need masks at the original image size (rescale=True)')
        inst = SoftInstances.from_dense(pred.masks, pred.scores.detach().cpu().numpy(),
                                        pred.labels.detach().cpu().numpy())
    idx = select_instances(inst.scores, inst.classes, score_thr, max_per_img)
    cuts = mask_cut(per_class(mask_thr, inst.classes[idx], 'mask_thr_binary'))
    label_map, kept = paint_instances(inst, idx, cuts, min_area)
    return LabelMapPrediction(label_map, inst.scores[kept], inst.classes[kept])


def apply_postprocess(pred: LabelMapPrediction, post: PostProcess) -> LabelMapPrediction:
    """Dilation of a prediction whose overlaps and small nuclei are already gone."""
    return pred.replace(label_map=dilate_label_map(pred.label_map, post.dilation_radius))
