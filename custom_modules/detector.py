"""Mask R-CNN as a label-map predictor (see :mod:`custom_modules.label_map`).

Thresholds may differ per class: ``model.test_cfg.rcnn.score_thr`` and
``mask_thr_binary`` take one number for all classes or a list of one per
class. MMDetection's heads take one float, so :class:`NucleusMaskRCNN` runs
the box head at the lowest score threshold without a cap, keeps per class the
detections scoring *above* their class's threshold (MMDetection's ``>``) and
the ``max_per_img`` best of those, and pastes their masks as soft masks
(:class:`SoftInstances`: probability x 255, truncated to uint8, cropped to the
box, as MMDetection's ``mask_thr_binary < 0`` gives them). Each class's mask
threshold then cuts its soft masks: a pixel is in when its uint8 value is at
least ``ceil(255 * thr)`` (thresholds act at a 1/255 resolution).
``tools/tune_thresholds.py`` caches the same soft instances, so what it scores
is what the model predicts.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmdet.models.detectors import MaskRCNN
from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, SampleList
from mmdet.structures.bbox import bbox2roi
from mmengine.config import ConfigDict

from .label_map import LabelMapPrediction, to_sample
from .postprocess import dilate_label_map, relabel

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


def image_batch(img: np.ndarray, out_shape: Tuple[int, int]) -> dict:
    """One ``H x W x 3`` uint8 image as a detector batch predicted at ``out_shape``."""
    h, w = img.shape[:2]
    sample = DetDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=tuple(out_shape),
        scale_factor=(w / out_shape[1], h / out_shape[0])))
    inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    return dict(inputs=[inputs], data_samples=[sample])


class ClassThresholds(NamedTuple):
    """Per-class cut-offs of ``test_cfg.rcnn`` (arrays of one value per class)."""
    score: np.ndarray
    mask: np.ndarray
    max_per_img: int


def class_thresholds(rcnn_cfg, num_classes: int) -> ClassThresholds:
    """Read ``score_thr`` and ``mask_thr_binary`` (a number or one per class).

    Raises:
        ValueError: a list whose length is not ``num_classes``, or a mask
            threshold outside (0, 1], naming the key.
    """
    out = []
    for key, default in (('score_thr', 0.05), ('mask_thr_binary', 0.5)):
        value = rcnn_cfg.get(key, default)
        if isinstance(value, (list, tuple)) and len(value) != num_classes:
            raise ValueError(f'model.test_cfg.rcnn.{key} has {len(value)} values but the model has '
                             f'num_classes={num_classes} (roi_head.bbox_head.num_classes): give '
                             'one per class, or one number for all')
        values = np.broadcast_to(np.asarray(value, np.float64), (num_classes, )).copy()
        if key == 'mask_thr_binary' and not ((values > 0) & (values <= 1)).all():
            raise ValueError(f'model.test_cfg.rcnn.{key} must be in (0, 1], got {value}')
        out.append(values)
    return ClassThresholds(out[0], out[1], int(rcnn_cfg.get('max_per_img', 100)))


def rpn_caps_for_area(rpn_cfg, area: int, caps_area: Optional[int]):
    """``rpn_cfg`` with ``nms_pre`` and ``max_per_img`` scaled by ``area / caps_area``.

    The caps are meant for an image of ``caps_area`` pixels; a larger image
    gets proportionally more, so that it has as many proposals per pixel (a
    fixed 2,000 starves a large image: its many small proposals push out the
    large nuclei's). Smaller images, and ``caps_area=None``, keep the config's.
    """
    if not caps_area or area <= caps_area:
        return rpn_cfg
    factor = area / caps_area
    return ConfigDict(dict(rpn_cfg, nms_pre=int(np.ceil(rpn_cfg.nms_pre * factor)),
                           max_per_img=int(np.ceil(rpn_cfg.max_per_img * factor))))


@MODELS.register_module()
class NucleusMaskRCNN(MaskRCNN):
    """Mask R-CNN that predicts label maps, post-processed for the competition.

    Args:
        postprocess: ``dict(min_area=..., dilation_radius=...)``, see
            :class:`PostProcess`.
        rpn_caps_area: the image area (pixels) that ``test_cfg.rpn``'s
            ``nms_pre`` and ``max_per_img`` are meant for; a larger image gets
            them scaled by its area (:func:`rpn_caps_for_area`). ``None``:
            MMDetection's fixed caps. Other arguments are MaskRCNN's;
            ``test_cfg.rcnn.score_thr`` and ``mask_thr_binary`` may be lists
            of one value per class (module doc).
    """

    def __init__(self, backbone: dict, rpn_head: dict, roi_head: dict, train_cfg: dict,
                 test_cfg: dict, neck: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None,
                 postprocess: Optional[dict] = None, rpn_caps_area: Optional[int] = None) -> None:
        super().__init__(backbone=backbone, rpn_head=rpn_head, roi_head=roi_head,
                         train_cfg=train_cfg, test_cfg=test_cfg, neck=neck,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.postprocess = make_postprocess(postprocess)
        self.rpn_caps_area = rpn_caps_area
        rcnn = self.roi_head.test_cfg
        self.thresholds = class_thresholds(rcnn, self.roi_head.bbox_head.num_classes)
        # MMDetection's code needs floats: the loosest (a copy: the config stays as given).
        self.roi_head.test_cfg = ConfigDict(dict(rcnn, score_thr=float(self.thresholds.score.min()),
                                                 mask_thr_binary=float(self.thresholds.mask.min())))

    def soft_instances(self, batch_inputs: torch.Tensor, batch_data_samples: SampleList,
                       rescale: bool = True, score_thr: Optional[Thr] = None,
                       max_per_img: Optional[int] = None) -> List[SoftInstances]:
        """Each image's detections with soft masks (``None``: the config's cut-offs)."""
        score_thr = self.thresholds.score if score_thr is None else score_thr
        max_per_img = self.thresholds.max_per_img if max_per_img is None else max_per_img
        x = self.extract_feat(batch_inputs)
        metas = [s.metainfo for s in batch_data_samples]
        if batch_data_samples[0].get('proposals', None) is None:
            area = max(int(m['img_shape'][0]) * int(m['img_shape'][1]) for m in metas)
            rpn_cfg = rpn_caps_for_area(self.rpn_head.test_cfg, area, self.rpn_caps_area)
            proposals = self.rpn_head.predict_by_feat(*self.rpn_head(x), batch_img_metas=metas,
                                                      cfg=rpn_cfg, rescale=False)
        else:
            proposals = [s.proposals for s in batch_data_samples]
        cfg = ConfigDict(dict(self.roi_head.test_cfg, score_thr=float(np.min(score_thr)),
                              max_per_img=0))  # per class below
        dets = self.roi_head.predict_bbox(x, metas, proposals, rcnn_test_cfg=cfg, rescale=False)
        for i, det in enumerate(dets):
            keep = select_instances(det.scores.cpu().numpy(), det.labels.cpu().numpy(),
                                    score_thr, max_per_img)
            dets[i] = det[torch.as_tensor(keep, dtype=torch.long, device=det.scores.device)]
        rois = bbox2roi([d.bboxes for d in dets])
        preds = (self.roi_head._mask_forward(x, rois)['mask_preds'].split([len(d) for d in dets])
                 if len(rois) else [None] * len(dets))
        return [self.paste_soft(pred, det, meta, rescale) for pred, det, meta in
                zip(preds, dets, metas)]

    def paste_soft(self, mask_preds, det, meta: dict, rescale: bool) -> SoftInstances:
        """Paste one image's mask logits one box at a time (MMDetection's CPU way), as uint8."""
        shape = tuple(meta['ori_shape' if rescale else 'img_shape'][:2])
        n = len(det)
        scores, classes = det.scores.cpu().numpy().astype(np.float32), det.labels.cpu().numpy()
        boxes, crops = np.zeros((n, 4), np.int32), []
        if n:
            bboxes = det.bboxes.clone()
            if rescale:
                bboxes = bboxes / bboxes.new_tensor(meta['scale_factor']).repeat((1, 2))
            probs = mask_preds.sigmoid()
            probs = probs[:, :1] if self.roi_head.mask_head.class_agnostic else probs[
                torch.arange(n), det.labels][:, None]
            for k in range(n):
                crop, (rows, cols) = _do_paste_mask(probs[k:k + 1], bboxes[k:k + 1], shape[0],
                                                    shape[1], skip_empty=True)
                boxes[k] = (rows.start, cols.start, rows.start + crop.shape[1],
                            cols.start + crop.shape[2])
                crops.append((crop[0] * 255).to(torch.uint8).cpu().numpy().ravel())
        masks = np.concatenate(crops) if crops else np.zeros(0, np.uint8)
        return SoftInstances(shape, scores, classes.astype(np.int64), boxes, masks)

    def to_prediction(self, inst: SoftInstances, raw: bool = False) -> LabelMapPrediction:
        """The config's mask cut-offs (and, unless ``raw``, min area and dilation)."""
        pred = instances_to_prediction(inst, 0 if raw else self.postprocess.min_area,
                                       mask_thr=self.thresholds.mask)
        return pred if raw else apply_postprocess(pred, self.postprocess)

    @torch.no_grad()
    def predict_instances(self, img: np.ndarray, out_shape: Optional[Tuple[int, int]] = None,
                          score_thr: Optional[Thr] = None,
                          max_per_img: Optional[int] = None) -> SoftInstances:
        """Soft instances of one pipeline image (see :meth:`predict_label_map`)."""
        out_shape = img.shape[:2] if out_shape is None else tuple(out_shape)
        data = self.data_preprocessor(image_batch(img, out_shape), False)
        return self.soft_instances(data['inputs'], data['data_samples'], True, score_thr,
                                   max_per_img)[0]

    def predict_label_map(self, img: np.ndarray, out_shape: Optional[Tuple[int, int]] = None,
                          raw: bool = False) -> LabelMapPrediction:
        """Predict one image array (the pipeline's ``H x W x 3`` model input).

        Args:
            img: the image as the test pipeline feeds it.
            out_shape: predict masks at this size (default: the image's); a
                rescaled view is pasted back at its original size this way.
            raw: skip ``min_area`` and dilation (for TTA views, merged later).
        """
        return self.to_prediction(self.predict_instances(img, out_shape), raw)

    @torch.no_grad()
    def predict(self, batch_inputs: torch.Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Label maps at the original size (``rescale=False``: at the input size)."""
        for sample, inst in zip(batch_data_samples,
                                self.soft_instances(batch_inputs, batch_data_samples, rescale)):
            to_sample(sample, self.to_prediction(inst))
        return batch_data_samples
