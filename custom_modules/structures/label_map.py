"""The one interface between segmenters and everything downstream.

Every model of the repo predicts, per image, a :class:`LabelMapPrediction`:
an ``H x W`` label map in the original frame (0 background, labels 1..K, no
overlaps), one score and one class per label. TTA, tiling, ensembles, the
metric, overlays, the exporter and the predictor consume only that.

In MMDetection's data samples it travels as ``pred_label_map`` (the map) beside
``pred_instances`` (``scores``, ``labels``, ``bboxes``; no dense masks, which
would cost ``K x H x W`` bytes). :func:`from_sample` also reads the dense masks
of a plain MMDetection model, so any detector can be scored and exported.
"""
import dataclasses
from typing import Optional

import numpy as np
import torch
from mmengine.structures import InstanceData

from custom_modules.structures.label_ops import instances_to_label_map, relabel, resize_labels


@dataclasses.dataclass(frozen=True)
class LabelMapPrediction:
    """One image's instances as a label map; ``len()`` is the number of instances.

    Attributes:
        label_map: ``H x W`` int32, label ``k`` is instance ``k - 1``.
        scores: ``K`` float scores.
        classes: ``K`` int class indices (0-based, as MMDetection's labels).
    """
    label_map: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @classmethod
    def empty(cls, shape) -> 'LabelMapPrediction':
        return cls(np.zeros(tuple(shape), np.int32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def replace(self, **changes) -> 'LabelMapPrediction':
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def check(self) -> 'LabelMapPrediction':
        """Raise when labels, scores and classes disagree; return self."""
        if self.label_map.ndim != 2:
            raise ValueError(f'label map must be H x W, got shape {self.label_map.shape}')
        if len(self.scores) != len(self.classes):
            raise ValueError(f'{len(self.scores)} scores but {len(self.classes)} classes')
        top = int(self.label_map.max()) if self.label_map.size else 0
        if top > len(self.scores) or (self.label_map.size and self.label_map.min() < 0):
            raise ValueError(f'labels run to {top} but there are {len(self.scores)} scores')
        return self


def label_map_boxes(label_map: np.ndarray, num: int) -> np.ndarray:
    """Tight ``x1 y1 x2 y2`` boxes (exclusive ends) of labels 1..num."""
    boxes = np.zeros((num, 4), np.float32)
    ys, xs = np.nonzero(label_map)
    if num == 0 or len(ys) == 0:
        return boxes
    labels = label_map[ys, xs] - 1
    big = np.iinfo(np.int64).max
    for col, values, fn, init in ((0, xs, np.minimum, big), (1, ys, np.minimum, big),
                                  (2, xs + 1, np.maximum, 0), (3, ys + 1, np.maximum, 0)):
        acc = np.full(num, init, np.int64)
        fn.at(acc, labels, values)
        boxes[:, col] = np.where(acc == big, 0, acc)
    return boxes


def to_sample(sample, pred: LabelMapPrediction) -> None:
    """Store a prediction in an MMDetection data sample (in place)."""
    pred.check()
    sample.pred_label_map = pred.label_map
    sample.pred_instances = InstanceData(
        scores=torch.as_tensor(np.asarray(pred.scores), dtype=torch.float32),
        labels=torch.as_tensor(np.asarray(pred.classes), dtype=torch.long),
        bboxes=torch.from_numpy(label_map_boxes(pred.label_map, len(pred))))


def as_numpy(value) -> np.ndarray:
    """A tensor, BitmapMasks or array-like as a numpy array."""
    if hasattr(value, 'to_ndarray'):  # BitmapMasks
        return value.to_ndarray()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def from_sample(sample, score_thr: float = 0.0, min_area: int = 0) -> LabelMapPrediction:
    """The prediction of a data sample (object or the dict of ``to_dict()``).

    Reads ``pred_label_map`` when present, else the dense ``pred_instances``
    masks of a plain MMDetection model (overlaps go to the higher score).
    Instances scoring below ``score_thr`` or smaller than ``min_area`` go.
    """
    get = sample.get if isinstance(sample, dict) else (lambda k, d=None: getattr(sample, k, d))
    inst = get('pred_instances')
    shape = tuple(get('ori_shape'))[:2]
    has_scores = inst is not None and 'scores' in inst
    scores = as_numpy(inst['scores']).astype(np.float64) if has_scores else np.zeros(0)
    classes = (as_numpy(inst['labels']).astype(np.int64) if inst is not None and 'labels' in inst
               else np.zeros(len(scores), np.int64))
    label_map = get('pred_label_map')
    if label_map is None:
        masks = as_numpy(inst['masks']) if len(scores) else np.zeros((0, ) + shape, bool)
        if masks.dtype != bool:
            raise ValueError('pred_instances.masks must be dense boolean masks '
                             '(encoded masks: decode them first)')
        label_map, kept = instances_to_label_map(masks, scores, min_area, score_thr)
        return LabelMapPrediction(label_map, scores[kept], classes[kept])
    label_map = as_numpy(label_map).astype(np.int32, copy=False)
    if label_map.shape != shape:
        raise ValueError(f'pred_label_map has shape {label_map.shape}, the image {shape}')
    if score_thr <= 0 and min_area <= 0:
        return LabelMapPrediction(label_map, scores, classes)
    return filter_prediction(LabelMapPrediction(label_map, scores, classes), score_thr, min_area)


def filter_prediction(pred: LabelMapPrediction, score_thr: float = 0.0,
                      min_area: int = 0) -> LabelMapPrediction:
    """Drop labels scoring under ``score_thr`` or smaller than ``min_area``; renumber."""
    n = len(pred)
    keep = np.asarray(pred.scores) >= score_thr
    lut = np.zeros(n + 1, np.int32)
    lut[1:][keep] = np.arange(1, keep.sum() + 1)  # kept labels in order: 1..K
    label_map, kept = relabel(lut[pred.label_map], np.arange(n)[keep], min_area)
    return LabelMapPrediction(label_map, np.asarray(pred.scores)[kept], np.asarray(pred.classes)[kept])


def resize_label_map(pred: LabelMapPrediction, shape) -> LabelMapPrediction:
    """The prediction at ``shape`` (see :func:`resize_labels`; nuclei that vanish go)."""
    if pred.label_map.shape == tuple(shape):
        return pred
    return filter_prediction(pred.replace(label_map=resize_labels(pred.label_map, shape)))


def gt_label_map(sample, shape: Optional[tuple] = None) -> Optional[np.ndarray]:
    """Ground-truth label map of a data sample, ``None`` without masks.

    Raises when the masks' shape differs from the image's (an empty stack
    of another size means no nuclei).
    """
    get = sample.get if isinstance(sample, dict) else (lambda k, d=None: getattr(sample, k, d))
    gt = get('gt_instances')
    if gt is None or 'masks' not in gt:
        return None
    masks = as_numpy(gt['masks']).astype(bool, copy=False)
    shape = tuple(get('ori_shape'))[:2] if shape is None else shape
    if masks.shape[1:] != shape:
        if len(masks) == 0:  # no nuclei: some loaders give an empty stack of another size
            return np.zeros(shape, np.int32)
        raise ValueError(f"image {get('img_path', get('img_id'))} (img_id {get('img_id')}): "
                         f'ground-truth masks are {masks.shape[1:]} but the image is {shape}')
    return instances_to_label_map(masks)[0]
