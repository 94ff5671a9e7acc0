"""Mask R-CNN as a label-map predictor (see :mod:`custom_modules.structures.label_map`).

Thresholds may differ per class: ``model.test_cfg.rcnn.score_thr`` and
``mask_thr_binary`` take one number for all classes or a list of one per
class. MMDetection's heads take one float, so :class:`NucleusMaskRCNN` runs
the box head at the lowest score threshold without a cap, keeps per class the
detections scoring *above* their class's threshold (MMDetection's ``>``) and
the ``max_per_img`` best of those, pastes their masks as soft masks and cuts
them per class (:mod:`custom_modules.models.instances`). ``tools/tune_thresholds.py``
caches the same soft instances (:meth:`NucleusMaskRCNN.capture_raw`) and replays
:meth:`NucleusMaskRCNN.predict_from_raw`, the method every prediction goes through, so
what it scores is what the model predicts.
"""
from typing import List, NamedTuple, Optional, Tuple

import numpy as np
import torch
from mmdet.models.detectors import MaskRCNN
from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi
from mmengine.config import ConfigDict

from custom_modules.models.instances import (SoftInstances, Thr, apply_postprocess,
                                             instances_to_prediction, make_postprocess,
                                             select_instances)
from custom_modules.structures.label_map import LabelMapPrediction, to_sample
from custom_modules.structures.predictor import image_batch


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

    A :class:`~custom_modules.structures.predictor.LabelMapPredictor` whose
    ``predict_label_map`` is ``predict_from_raw(capture_raw(img))`` (as the U-Net's).

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

    def loss(self, batch_inputs: torch.Tensor, batch_data_samples: SampleList) -> dict:
        """MaskRCNN's losses; under CPU bfloat16 autocast
        (:class:`~custom_modules.engine.mixed_precision.CPUBFloat16OptimWrapper`) only the
        backbone and neck run in bfloat16: the heads' NMS and RoIAlign (mmcv) take float32."""
        if not torch.is_autocast_enabled('cpu'):
            return super().loss(batch_inputs, batch_data_samples)
        feats = tuple(f.float() for f in self.extract_feat(batch_inputs))
        self.extract_feat = lambda _: feats  # the heads below take these features
        try:
            with torch.autocast('cpu', enabled=False):
                return super().loss(batch_inputs, batch_data_samples)
        finally:
            del self.extract_feat  # the class's method again

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

    def raw_settings(self) -> dict:
        """The cut-offs :meth:`predict_from_raw` applies by default (per class)."""
        return dict(score_thr=tuple(float(v) for v in self.thresholds.score),
                    mask_thr=tuple(float(v) for v in self.thresholds.mask),
                    max_per_img=self.thresholds.max_per_img)

    def predict_from_raw(self, inst: SoftInstances, settings: Optional[dict] = None,
                         raw: bool = False) -> LabelMapPrediction:
        """A prediction from soft instances with ``settings`` (keys of :meth:`raw_settings`;
        ``None``: the config's); unless ``raw``, min area and dilation too."""
        s = self.raw_settings() if settings is None else settings
        pred = instances_to_prediction(inst, 0 if raw else self.postprocess.min_area,
                                       s['score_thr'], s['mask_thr'], s['max_per_img'])
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

    def capture_raw(self, img: np.ndarray, out_shape: Optional[Tuple[int, int]] = None,
                    score_thr: Optional[float] = None) -> SoftInstances:
        """The raw prediction :meth:`predict_from_raw` takes: soft instances above the
        config's cut-offs, or every detection above ``score_thr`` (uncapped: the tuner's)."""
        if score_thr is None:
            return self.predict_instances(img, out_shape)
        return self.predict_instances(img, out_shape, score_thr, max_per_img=0)

    def predict_label_map(self, img: np.ndarray, out_shape: Optional[Tuple[int, int]] = None,
                          raw: bool = False) -> LabelMapPrediction:
        """Predict one image array (the pipeline's ``H x W x 3`` model input).

        Args:
            img: the image as the test pipeline feeds it.
            out_shape: predict masks at this size (default: the image's); a
                rescaled view is pasted back at its original size this way.
            raw: skip ``min_area`` and dilation (for TTA views, merged later).
        """
        return self.predict_from_raw(self.capture_raw(img, out_shape), None, raw)

    @torch.no_grad()
    def predict(self, batch_inputs: torch.Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Label maps at the original size (``rescale=False``: at the input size)."""
        for sample, inst in zip(batch_data_samples,
                                self.soft_instances(batch_inputs, batch_data_samples, rescale)):
            to_sample(sample, self.predict_from_raw(inst))
        return batch_data_samples
