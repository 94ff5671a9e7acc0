"""Test-time augmentation over *label maps* (MMDetection 3.3 merges only boxes).

``NucleusTTAModel`` makes the views of each image itself (a 90-degree rotation,
a flip, a rescale and a per-channel colour shift each), predicts each with the
wrapped model's ``predict_label_map``, maps every view's label map back to the
original frame (exactly for flips and rotations; a rescaled view is pasted back
at the original size by Mask R-CNN itself), and merges the views with the
order-independent :func:`~custom_modules.inference.consensus.consensus_merge`.

Because views are made from the image array, the TTA model is itself a
:class:`~custom_modules.structures.predictor.LabelMapPredictor` and wraps any
other one: tiles of a TTA model and a TTA of a tiled model both work.
Memory: each view is reduced at once to one ``H x W`` label map.

Its stages are functions that ``tools/tune_thresholds.py`` calls too, with
other settings (:mod:`custom_modules.tuning.tuner`): :func:`view_inputs`
(a view's image and frame), :func:`view_to_original` (a view's raw
prediction, filtered and mapped back), :func:`merge_views` (consensus, or the
one decoded mean), then ``apply_postprocess`` (dilation).

``merge='probabilities'`` (for models with pixel probabilities, the U-Nets)
instead averages the views' probabilities in the original frame and decodes
once, as U-Net practitioners do.
"""
from typing import Iterable, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmdet.registry import MODELS
from mmengine.model import BaseTTAModel

from custom_modules.data.intensity import shift_channels
from custom_modules.inference.consensus import consensus_merge
from custom_modules.models.instances import apply_postprocess, make_postprocess
from custom_modules.structures.label_map import LabelMapPrediction, filter_prediction
from custom_modules.structures.predictor import Shape, innermost, predict_batch

VIEW_KEYS = ('rot90', 'flip', 'scale', 'shift')
FLIPS = (None, 'horizontal', 'vertical')
MERGES = ('label_maps', 'probabilities')


def check_view(view: dict) -> dict:
    """Validate a view spec and fill its defaults."""
    unknown = set(view) - set(VIEW_KEYS)
    if unknown:
        raise KeyError(f'unknown TTA view key(s) {sorted(unknown)}; allowed: {VIEW_KEYS}')
    out = dict(rot90=int(view.get('rot90', 0)) % 4, flip=view.get('flip'),
               scale=float(view.get('scale', 1.0)), shift=tuple(view.get('shift', (0, 0, 0))))
    if out['flip'] not in FLIPS:
        raise ValueError(f"flip must be one of {FLIPS}, got {out['flip']!r}")
    if out['scale'] <= 0:
        raise ValueError(f"scale must be positive, got {out['scale']}")
    return out


def forward_geometry(array: np.ndarray, view: dict) -> np.ndarray:
    """Rotate then flip an ``H x W [x C]`` array into the view's frame."""
    array = np.rot90(array, view['rot90'])
    if view['flip'] == 'horizontal':
        array = array[:, ::-1]
    elif view['flip'] == 'vertical':
        array = array[::-1]
    return np.ascontiguousarray(array)


def inverse_geometry(array: np.ndarray, view: dict) -> np.ndarray:
    """Undo :func:`forward_geometry` (pixel-exact)."""
    if view['flip'] == 'horizontal':
        array = array[:, ::-1]
    elif view['flip'] == 'vertical':
        array = array[::-1]
    return np.ascontiguousarray(np.rot90(array, -view['rot90']))


def make_view(img: np.ndarray, view: dict) -> np.ndarray:
    """The view's image: rotation and flip, then rescale, then colour shift."""
    img = forward_geometry(img, view)
    if view['scale'] != 1.0:
        h, w = img.shape[:2]
        size = (max(1, round(w * view['scale'])), max(1, round(h * view['scale'])))
        img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    if any(view['shift']):
        img = shift_channels(img, view['shift'])
    return img


def view_inputs(img: np.ndarray, view: dict,
                out_shape: Shape = None) -> Tuple[np.ndarray, Tuple[int, int]]:
    """A view's image and the frame its prediction is pasted in (``out_shape``, or the
    image's, turned as the view turns it: before rescaling)."""
    h, w = img.shape[:2] if out_shape is None else tuple(out_shape)
    return make_view(img, view), ((w, h) if view['rot90'] % 2 else (h, w))


def view_to_original(pred: LabelMapPrediction, view: dict,
                     score_thr: float) -> LabelMapPrediction:
    """A view's raw prediction without nuclei under ``score_thr``, in the original frame."""
    pred = filter_prediction(pred, score_thr)
    return pred.replace(label_map=inverse_geometry(pred.label_map, view))


def mean_probs(view_probs: Iterable[np.ndarray]) -> np.ndarray:
    """The mean of views' ``C x H x W`` probabilities, summed one at a time in float64
    (the same mean in any view order)."""
    total, count = np.float64(0), 0
    for probs in view_probs:
        total, count = total + probs.astype(np.float64), count + 1
    return (total / count).astype(np.float32)


def merge_views(preds: Sequence[LabelMapPrediction], min_area: int, merge: str = 'label_maps',
                match_iou: float = 0.5, vote_thr: float = 0.5,
                score_thr: float = 0.0) -> LabelMapPrediction:
    """The views' consensus (``merge='label_maps'``); else the one prediction (decoded mean
    probabilities, or a model without TTA) without nuclei under ``score_thr``. Nuclei under
    ``min_area`` go."""
    if merge == 'label_maps':
        return consensus_merge(preds, match_iou=match_iou, vote_thr=vote_thr, min_area=min_area)
    if len(preds) != 1:
        raise ValueError(f"merge {merge!r} takes one prediction, got {len(preds)}")
    return filter_prediction(preds[0], score_thr, min_area)


@MODELS.register_module()
class NucleusTTAModel(BaseTTAModel):
    """Predict several views of each image and merge them by consensus.

    Args:
        module: the label-map predictor's config (``tools/test.py --tta`` fills
            it in with the config's model).
        views: dicts with optional keys ``rot90`` (quarter turns), ``flip``
            (None, 'horizontal', 'vertical'), ``scale`` (resize factor) and
            ``shift`` (per-channel offsets, BGR), applied in that order.
        match_iou: nuclei of two views are one when their IoU exceeds this.
        vote_thr: a pixel belongs to a merged nucleus when at least this
            share of the views put it there.
        score_thr: per-view nuclei scoring below it are ignored.
        postprocess: ``dict(min_area, dilation_radius)`` for the merged
            result; ``None`` takes the wrapped network's own.
        merge: 'label_maps' (consensus of the views' nuclei) or
            'probabilities' (average the views' pixel probabilities, then
            decode once: the U-Net practice; the model needs
            ``predict_probs`` and ``decode_probs``).
        data_preprocessor: see ``BaseTTAModel`` (unused: views are made from
            the raw image and preprocessed by the wrapped model).
    """

    def __init__(self, module: dict, views: Sequence[dict] = (dict(), ), match_iou: float = 0.5,
                 vote_thr: float = 0.5, score_thr: float = 0.0,
                 postprocess: Optional[dict] = None, merge: str = 'label_maps',
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        if not views:
            raise ValueError('NucleusTTAModel needs at least one view')
        if match_iou < 0.5:
            raise ValueError('match_iou below 0.5 would allow one-to-many matches')
        self.views = [check_view(v) for v in views]
        if merge not in MERGES:
            raise ValueError(f'merge must be one of {MERGES}, got {merge!r}')
        if merge == 'probabilities' and not hasattr(self.module, 'predict_probs'):
            raise ValueError(f'{type(self.module).__name__} has no pixel probabilities to '
                             "average: use merge='label_maps'")
        self.merge = merge
        self.match_iou = match_iou
        self.vote_thr = vote_thr
        self.score_thr = score_thr
        self.post = make_postprocess(postprocess) if postprocess is not None else getattr(
            innermost(self.module), 'postprocess', make_postprocess(None))

    def predict_view(self, img: np.ndarray, view: dict,
                     out_shape: Shape = None) -> LabelMapPrediction:
        """One view's raw prediction, in the original frame (or ``out_shape``)."""
        view_img, shape = view_inputs(img, view, out_shape)
        pred = view_to_original(self.module.predict_label_map(view_img, shape, raw=True), view,
                                self.score_thr)
        expected = img.shape[:2] if out_shape is None else tuple(out_shape)
        if pred.label_map.shape != expected:
            raise ValueError(f'view {view} maps back to {pred.label_map.shape}, '
                             f'expected {expected}')
        return pred

    def view_probs(self, img: np.ndarray, view: dict, out_shape: Shape = None) -> np.ndarray:
        """One view's ``C x H x W`` probabilities, in the original frame (or ``out_shape``)."""
        view_img, shape = view_inputs(img, view, out_shape)
        probs = self.module.predict_probs(view_img, out_shape=shape)
        return inverse_geometry(probs.transpose(1, 2, 0), view).transpose(2, 0, 1)

    def predict_probs(self, img: np.ndarray, out_shape: Shape = None) -> np.ndarray:
        """The views' mean ``C x H x W`` probabilities (``merge='probabilities'``)."""
        if self.merge != 'probabilities':
            raise ValueError("predict_probs needs merge='probabilities'")
        return mean_probs(self.view_probs(img, view, out_shape) for view in self.views)

    def decode_probs(self, probs: np.ndarray, raw: bool = False) -> LabelMapPrediction:
        """The wrapped model's decoding of (averaged) probabilities."""
        return self.module.decode_probs(probs, raw)

    def predict_label_map(self, img: np.ndarray, out_shape: Shape = None,
                          raw: bool = False) -> LabelMapPrediction:
        """The consensus of all views of one ``H x W x 3`` image (see
        :class:`~custom_modules.structures.predictor.LabelMapPredictor`)."""
        view_output = self.view_probs if self.merge == 'probabilities' else self.predict_view
        return self.merge_outputs((view_output(img, view, out_shape) for view in self.views), raw)

    def merge_outputs(self, outputs: Iterable, raw: bool = False) -> LabelMapPrediction:
        """Views' outputs merged into one prediction: their probabilities
        (:meth:`view_probs`) averaged and decoded (``merge='probabilities'``), else their
        predictions (:meth:`predict_view`) by consensus; any subset of the views."""
        min_area = 0 if raw else self.post.min_area
        if self.merge == 'probabilities':
            preds = [self.decode_probs(mean_probs(outputs), raw=True)]
        else:
            preds = list(outputs)
        merged = merge_views(preds, min_area, self.merge, self.match_iou, self.vote_thr,
                             self.score_thr)
        return merged if raw else apply_postprocess(merged, self.post)

    def test_step(self, data: dict) -> list:
        """A test batch of raw images (the plain test pipeline) to predictions."""
        return predict_batch(self, data)

    def merge_preds(self, data_samples_list):
        raise NotImplementedError('NucleusTTAModel makes and merges its views itself')

