"""The DSB2018 competition metric as an mmengine metric.

Per image, for each IoU threshold t in 0.50, 0.55, ..., 0.95: a prediction
matches a ground-truth nucleus when their IoU is *strictly* above t, and the
image scores TP / (TP + FP + FN). The image's score is the mean over
thresholds, the data set's the mean over images. Predictions are first made
non-overlapping by :func:`instances_to_label_map` (what the exporter submits).

An image with no ground-truth nuclei scores 1.0 when nothing is predicted
and 0.0 otherwise (every prediction is a false positive).

The score is class-agnostic. With several classes, ``score_class_<name>``
scores each class alone: per image, the predictions of class c against the
ground truth of class c, averaged over the images where either has one.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from custom_modules.structures.label_map import as_numpy, from_sample, gt_label_map
from custom_modules.structures.label_ops import label_map_iou, relabel
from custom_modules.structures.rle import coco_encode_label_map

DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.5, 1.0, 0.05), 2))


def check_thresholds(thresholds: Sequence[float]) -> tuple:
    """The thresholds as floats; ValueError for any below 0.5.

    Scores count matched rows and columns of the IoU matrix, which is only
    right when matches are one-to-one. Masks of one image do not overlap, so
    IoU > 0.5 allows at most one partner per nucleus; below 0.5, two halves
    of one nucleus would both match it and the count would be wrong.
    """
    thresholds = tuple(float(t) for t in thresholds)
    low = [t for t in thresholds if t < 0.5]
    if low:
        raise ValueError(f'IoU thresholds must be >= 0.5, got {low}: scores count matches as '
                         'one-to-one, which IoU > 0.5 guarantees for non-overlapping masks '
                         'and lower thresholds do not')
    return thresholds


def precision_at(iou: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> np.ndarray:
    """TP / (TP + FP + FN) at each threshold from a ``gt x pred`` IoU matrix.

    Raises:
        ValueError: a threshold below 0.5 (see :func:`check_thresholds`).
    """
    thresholds = check_thresholds(thresholds)
    n_gt, n_pred = iou.shape
    out = np.empty(len(thresholds))
    for i, t in enumerate(thresholds):
        # IoU > 0.5 makes matches one-to-one, so counting suffices.
        match = iou > t
        tp = int(match.any(1).sum())
        fp, fn = n_pred - int(match.any(0).sum()), n_gt - tp
        denom = tp + fp + fn
        out[i] = 1.0 if denom == 0 else tp / denom
    return out


def score_label_maps(gt: np.ndarray, pred: np.ndarray,
                     thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Per-threshold scores of one image given two label maps.

    Labels need not be consecutive: absent labels are not instances.
    """
    gt = relabel(gt, np.arange(int(gt.max())))[0]
    pred = relabel(pred, np.arange(int(pred.max())))[0]
    return precision_at(label_map_iou(gt, pred), thresholds)


def gt_label_classes(sample: dict, gt_map: np.ndarray) -> np.ndarray:
    """The class of each label 1..K of a sample's ground-truth label map.

    Label ``k`` is the ``k``-th ground-truth instance left after overlap
    removal (:func:`gt_label_map`); an instance owns its first pixel, and of
    the instances covering that pixel, the first. Classes come from
    ``gt_instances.labels`` (all 0 without them).
    """
    num = int(gt_map.max())
    gt = sample['gt_instances']
    labels = as_numpy(gt['labels']).astype(np.int64) if 'labels' in gt else np.zeros(0, np.int64)
    if num == 0 or not labels.any():  # one class: no need to find owners
        return np.zeros(num, np.int64)
    values, first = np.unique(gt_map.ravel(), return_index=True)
    values, first = values[values > 0], first[values > 0]
    covering = as_numpy(gt['masks']).reshape(len(labels), -1)[:, first] != 0
    out = np.zeros(num, np.int64)
    out[values - 1] = labels[covering.argmax(0)]
    return out


def class_scores(gt_map: np.ndarray, gt_classes: np.ndarray, pred_map: np.ndarray,
                 pred_classes: np.ndarray,
                 thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> Dict[int, np.ndarray]:
    """Per-threshold scores of each class present in the ground truth or the predictions.

    Args:
        gt_map: ground-truth label map, label ``k`` of class ``gt_classes[k - 1]``.
        gt_classes: class index of each ground-truth label.
        pred_map: predicted label map, label ``k`` of class ``pred_classes[k - 1]``.
        pred_classes: class index of each predicted label.
        thresholds: IoU thresholds.

    Returns:
        ``{class index: scores}``; classes in neither are absent.
    """
    gt_lut = np.concatenate(([-1], np.asarray(gt_classes, np.int64)))
    pred_lut = np.concatenate(([-1], np.asarray(pred_classes, np.int64)))
    out = {}
    for cls in sorted(set(gt_lut[1:].tolist()) | set(pred_lut[1:].tolist())):
        out[cls] = score_label_maps(np.where(gt_lut[gt_map] == cls, gt_map, 0),
                                    np.where(pred_lut[pred_map] == cls, pred_map, 0), thresholds)
    return out


def class_key(index: int, class_names: Sequence[str]) -> str:
    """``class_<name>`` (``class_<index>`` past the names), non-word characters as ``_``."""
    name = class_names[index] if 0 <= index < len(class_names) else str(index)
    return 'class_' + re.sub(r'\W', '_', str(name))


@METRICS.register_module()
class DSBMetric(BaseMetric):
    """Mean over images of the mean over IoU thresholds of TP/(TP+FP+FN).

    Args:
        thresholds: IoU thresholds (default 0.50..0.95 by 0.05), none below
            0.5 (ValueError: counting assumes one-to-one matches).
        min_area: predicted fragments below this area are dropped first.
        score_thr: predictions scoring below it are ignored.
        segm_ap: also compute COCO segm AP/AP50 (pycocotools).
        collect_device: 'cpu' or 'gpu' for distributed collection.
        prefix: key prefix (``dsb/score``, ``dsb/P@0.50``, ...; ``dsb/score_<kind>``
            per image kind when the pipeline packs ``stratum``; with more than
            one class in ``dataset_meta['classes']`` or the data,
            ``dsb/score_class_<name>`` per class).
    """

    default_prefix: Optional[str] = 'dsb'

    def __init__(self, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, min_area: int = 0,
                 score_thr: float = 0.0, segm_ap: bool = False, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.thresholds = check_thresholds(thresholds)
        self.min_area = min_area
        self.score_thr = score_thr
        self.segm_ap = segm_ap

    def class_names(self) -> tuple:
        """The dataset's class names (``()`` before ``dataset_meta`` is set)."""
        return tuple((self.dataset_meta or {}).get('classes', ()))

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = from_sample(sample, self.score_thr, self.min_area)
            gt_map, pred_map, scores = gt_label_map(sample), pred.label_map, pred.scores
            if gt_map is None:
                continue
            result = dict(img_id=sample.get('img_id'), kind=sample.get('stratum', '').split('/')[0],
                          scores=score_label_maps(gt_map, pred_map, self.thresholds))
            gt_classes = gt_label_classes(sample, gt_map)
            if len(self.class_names()) > 1 or gt_classes.any() or np.any(pred.classes):
                result['classes'] = class_scores(gt_map, gt_classes, pred_map, pred.classes,
                                                 self.thresholds)
            if self.segm_ap:
                result['gt'] = list(coco_encode_label_map(gt_map).values())
                result['pred'] = [(rle, float(scores[lab - 1]))
                                  for lab, rle in coco_encode_label_map(pred_map).items()]
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> dict:
        logger = MMLogger.get_current_instance()
        if not self.dataset_meta.get('has_annotations', True) or not results:
            logger.info('DSBMetric: no ground truth in this set, no score computed')
            return {}
        per_image = np.stack([r['scores'] for r in results])
        metrics = OrderedDict(score=float(per_image.mean()))
        for t, value in zip(self.thresholds, per_image.mean(0)):
            metrics[f'P@{t:.2f}'] = float(value)
        kinds = np.array([r['kind'] for r in results])
        for kind in sorted(set(kinds) - {''}):  # needs 'stratum' in the pipeline's meta_keys
            metrics[f'score_{kind}'] = float(per_image[kinds == kind].mean())
        metrics.update(self.per_class(results))
        if self.segm_ap:
            metrics.update(coco_segm_ap(results))
        logger.info(f'DSB score over {len(results)} images: {metrics["score"]:.4f}')
        return metrics

    def per_class(self, results: List[dict]) -> Dict[str, float]:
        """``score_class_<name>`` of every class met, when there are several classes."""
        names = self.class_names()
        per_class: Dict[int, list] = {}
        for r in results:
            for cls, scores in r.get('classes', {}).items():
                per_class.setdefault(cls, []).append(scores)
        if max(len(names), len(per_class), max(per_class, default=0) + 1) < 2:
            return {}
        return {f'score_{class_key(cls, names)}': float(np.mean(per_class[cls]))
                for cls in sorted(per_class)}


def coco_segm_ap(results: List[dict]) -> dict:
    """COCO segm AP and AP50 from stored RLEs (up to 1000 detections/image)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    images, gts, dts = [], [], []
    for img_id, r in enumerate(results, start=1):
        h, w = (r['gt'] or [p for p, _ in r['pred']] or [{'size': [1, 1]}])[0]['size']
        images.append(dict(id=img_id, height=h, width=w))
        for rle in r['gt']:
            gts.append(dict(id=len(gts) + 1, image_id=img_id, category_id=1, segmentation=rle,
                            area=float(rle_area(rle)), iscrowd=0, bbox=[0, 0, 1, 1]))
        for rle, s in r['pred']:
            dts.append(dict(image_id=img_id, category_id=1, segmentation=rle, score=s))
    if not gts or not dts:
        return dict(segm_AP=0.0, segm_AP50=0.0)
    coco_gt = COCO()
    coco_gt.dataset = dict(images=images, annotations=gts, categories=[dict(id=1, name='nucleus')])
    coco_gt.createIndex()
    evaluator = COCOeval(coco_gt, coco_gt.loadRes(dts), 'segm')
    evaluator.params.maxDets = [10, 100, 1000]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return dict(segm_AP=float(evaluator.stats[0]), segm_AP50=float(evaluator.stats[1]))


def rle_area(rle: dict) -> int:
    """Area of a COCO RLE dict whose counts are a str."""
    from pycocotools import mask as mask_utils
    return int(mask_utils.area(dict(rle, counts=rle['counts'].encode('ascii'))))
