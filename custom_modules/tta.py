"""Test-time augmentation that merges *instance masks* (MMDetection 3.3's cannot).

``NucleusTTAViews`` (a transform) turns one image into several views: a
90-degree rotation, a flip, a rescale and a per-channel colour shift each.
``NucleusTTAModel`` predicts every view, maps its masks back to the original
frame (exactly for flips and rotations; scales are resampled by Mask R-CNN's
own paste at the original size), matches instances across views by mask IoU,
and merges each match into one mask by a pixel vote and one score (the mean
over views, a missing view counting 0). The result never overlaps.

Memory: each view is reduced at once to one ``H x W`` label map, so 15 views
of a 2000 x 2000 image cost 15 x 16 MB, not 15 dense mask stacks.
"""
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.model import BaseTTAModel
from mmdet.registry import MODELS, TRANSFORMS
from mmdet.structures import DetDataSample

from .detector import make_postprocess, set_label_map_predictions
from .postprocess import dilate_label_map, instances_to_label_map, label_map_iou, relabel
from .transforms import shift_channels

VIEW_KEYS = ('rot90', 'flip', 'scale', 'shift')
FLIPS = (None, 'horizontal', 'vertical')


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


@TRANSFORMS.register_module()
class NucleusTTAViews(BaseTransform):
    """Make one packed input per view; ground truth stays in the original frame.

    Args:
        views: dicts with optional keys ``rot90`` (quarter turns), ``flip``
            (None, 'horizontal', 'vertical'), ``scale`` (resize factor) and
            ``shift`` (per-channel offsets, BGR), applied in that order.
        pack: the packing transform; its meta_keys must include
            ``tta_view`` and ``tta_ori_shape``.
    """

    def __init__(self, views: Sequence[dict], pack: dict) -> None:
        if not views:
            raise ValueError('NucleusTTAViews needs at least one view')
        self.views = [check_view(v) for v in views]
        self.pack = TRANSFORMS.build(pack)

    def transform(self, results: dict) -> dict:
        packed = {}
        for view in self.views:
            r = dict(results)  # shallow: ground truth is shared, never modified
            img = forward_geometry(results['img'], view)
            h, w = img.shape[:2]
            if view['scale'] != 1.0:
                size = (max(1, round(w * view['scale'])), max(1, round(h * view['scale'])))
                img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
            if any(view['shift']):
                img = shift_channels(img, view['shift'])
            r.update(img=img, img_shape=img.shape[:2], ori_shape=(h, w),
                     scale_factor=(img.shape[1] / w, img.shape[0] / h), tta_view=view,
                     tta_ori_shape=tuple(results['img'].shape[:2]))
            for key, value in self.pack(r).items():
                packed.setdefault(key, []).append(value)
        return packed

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(views={self.views})'


@MODELS.register_module()
class NucleusTTAModel(BaseTTAModel):
    """Merge instance masks predicted on several views of each image.

    Args:
        module: the detector config (filled in by ``tools/test.py --tta``).
        match_iou: two instances of different views are one nucleus when
            their mask IoU exceeds this (>= 0.5 keeps matches one-to-one).
        vote_thr: a pixel belongs to a merged nucleus when at least this
            fraction of the views put it there.
        score_thr: per-view predictions below it are ignored.
        postprocess: ``dict(min_area, dilation_radius)`` for the merged
            result; ``None`` takes the detector's own.
        data_preprocessor: see ``BaseTTAModel``.
    """

    def __init__(self, module: dict, match_iou: float = 0.5, vote_thr: float = 0.5,
                 score_thr: float = 0.0, postprocess: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        if match_iou < 0.5:
            raise ValueError('match_iou below 0.5 would allow one-to-many matches')
        self.match_iou = match_iou
        self.vote_thr = vote_thr
        self.score_thr = score_thr
        self.post = make_postprocess(postprocess) if postprocess is not None else getattr(
            self.module, 'postprocess', make_postprocess(None))

    def _predict_view(self, data: dict) -> list:
        if hasattr(self.module, 'predict_raw'):
            data = self.module.data_preprocessor(data, False)
            return self.module.predict_raw(data['inputs'], data['data_samples'], rescale=True)
        return self.module.test_step(data)

    def test_step(self, data):
        """Predict view by view, keeping one label map per view and image."""
        num_views = len(data[next(iter(data))])
        frames, templates = None, None
        for idx in range(num_views):
            samples = self._predict_view({key: value[idx] for key, value in data.items()})
            if frames is None:
                frames, templates = [[] for _ in samples], samples
            for i, sample in enumerate(samples):
                frames[i].append(self.view_to_frame(sample))
        return [self.merge_frames(f, t) for f, t in zip(frames, templates)]

    def merge_preds(self, data_samples_list: List[List[DetDataSample]]) -> List[DetDataSample]:
        """BaseTTAModel's API: merge per-image lists of view predictions."""
        return [self.merge_frames([self.view_to_frame(s) for s in views], views[0])
                for views in data_samples_list]

    def view_to_frame(self, sample: DetDataSample) -> Tuple[np.ndarray, np.ndarray]:
        """A view's predictions as a label map in the original frame, and scores."""
        view = sample.metainfo['tta_view']
        pred = sample.pred_instances
        shape = tuple(sample.metainfo['ori_shape'])
        masks = pred.masks if len(pred) else np.zeros((0, ) + shape, bool)
        label_map, kept = instances_to_label_map(masks, pred.scores, 0, self.score_thr)
        scores = pred.scores.detach().cpu().numpy()[kept] if len(pred) else np.zeros(0)
        label_map = inverse_geometry(label_map, view)
        if label_map.shape != tuple(sample.metainfo['tta_ori_shape']):
            raise ValueError(f'view {view} maps back to {label_map.shape}, expected '
                             f"{sample.metainfo['tta_ori_shape']}")
        return label_map, scores

    def merge_frames(self, frames: List[Tuple[np.ndarray, np.ndarray]],
                     template: DetDataSample) -> DetDataSample:
        """Match instances across views by IoU and merge them by pixel vote."""
        shape = frames[0][0].shape
        anchor = np.zeros(shape, dtype=np.int32)  # first-seen extent of each cluster
        score_sum, keys = [], []
        for label_map, scores in frames:
            n, c = len(scores), len(score_sum)
            lut = np.zeros(n + 1, dtype=np.int64)
            if n and c:
                iou = label_map_iou(label_map, anchor, n, c)
                best = iou.argmax(1)
                matched = iou[np.arange(n), best] > self.match_iou
                lut[1:][matched] = best[matched] + 1
            new = np.flatnonzero(lut[1:] == 0) + 1
            lut[new] = np.arange(c + 1, c + 1 + len(new))
            score_sum.extend([0.0] * len(new))
            free = (anchor == 0) & (label_map > 0)
            anchor[free] = np.where(np.isin(label_map[free], new), lut[label_map[free]], 0)
            for lab in range(1, n + 1):
                score_sum[lut[lab] - 1] += float(scores[lab - 1])
            pix = np.flatnonzero(label_map)
            keys.append(pix * (1 << 24) + lut[label_map.ravel()[pix]])
        merged = self.vote(np.concatenate(keys) if keys else np.zeros(0, np.int64),
                           len(frames), shape)
        cluster_scores = np.asarray(score_sum) / len(frames)
        order = np.argsort(-cluster_scores, kind='stable')
        rank = np.zeros(len(order) + 1, dtype=np.int32)
        rank[order + 1] = np.arange(1, len(order) + 1)
        # Non-overlapping by construction: compact by score, drop the small ones.
        label_map, kept = relabel(rank[merged], order, self.post.min_area)
        return self.finish(template, label_map, cluster_scores[kept])

    def vote(self, keys: np.ndarray, num_views: int, shape) -> np.ndarray:
        """Label map of clusters: each pixel goes to its most-voted cluster."""
        out = np.zeros(int(np.prod(shape)), dtype=np.int32)
        if keys.size == 0:
            return out.reshape(shape)
        uniq, votes = np.unique(keys, return_counts=True)
        pix, cluster = uniq >> 24, uniq & ((1 << 24) - 1)
        enough = votes >= max(1, int(np.ceil(self.vote_thr * num_views - 1e-9)))
        pix, cluster, votes = pix[enough], cluster[enough], votes[enough]
        order = np.lexsort((cluster, -votes, pix))  # per pixel: most votes first
        first = np.ones(len(order), bool)
        first[1:] = pix[order][1:] != pix[order][:-1]
        out[pix[order][first]] = cluster[order][first]
        return out.reshape(shape)

    def finish(self, template: DetDataSample, label_map: np.ndarray,
               scores: np.ndarray) -> DetDataSample:
        """A data sample in the original frame with the merged instances.

        ``label_map`` holds labels 1..len(scores), already filtered by area.
        """
        meta = dict(template.metainfo)
        shape = tuple(meta['tta_ori_shape'])
        meta.update(ori_shape=shape, img_shape=shape, scale_factor=(1.0, 1.0))
        meta.pop('tta_view')
        out = DetDataSample(metainfo=meta)
        if 'gt_instances' in template:
            out.gt_instances = template.gt_instances
        label_map = dilate_label_map(label_map, self.post.dilation_radius)
        set_label_map_predictions(out, label_map, scores)
        return out
