"""Ensembles of trained models, each member a config and a checkpoint.

Three ways to combine members (``merge``):

- ``'consensus'``: every member's label map, merged by
  :func:`~custom_modules.inference.consensus.consensus_merge` with a weight per member
  (any model family; U-Net and Mask R-CNN together).
- ``'probabilities'``: average the members' pixel probabilities (weighted),
  then decode once with the first member's settings (members of one U-Net
  family with the same heads: checkpoints or configs).
- ``'split'``: the first member's nuclei (e.g. Mask R-CNN, which finds faint
  ones), each one split along the second member's nuclei (e.g. a U-Net, which
  separates touching ones) when two or more of those lie mostly inside it.

With ``tta=True`` (``tools/test.py --tta``) each member predicts with its own
config's ``tta_model`` (for ``'probabilities'``, one that averages probabilities). The
ensemble is a :class:`~custom_modules.structures.predictor.LabelMapPredictor` of
members that are too: tiling and TTA wrap it, and a member may be a tiled or a TTA model
(``dict(model=...)``).
"""
from typing import List, Optional, Sequence, Union

import numpy as np
from mmdet.registry import MODELS
from mmengine.model import BaseModel
from scipy import ndimage
from skimage.segmentation import watershed

from custom_modules.data.datasets import config_input_mode
from custom_modules.inference.builder import load_weights, predictor_cfg
from custom_modules.inference.consensus import consensus_merge
from custom_modules.inference.model_zoo import load_config
from custom_modules.structures.label_map import LabelMapPrediction, filter_prediction
from custom_modules.structures.label_ops import label_overlap, relabel
from custom_modules.structures.predictor import Shape, innermost, predict_batch

MERGES = ('consensus', 'probabilities', 'split')


def split_by(base: LabelMapPrediction, splitter: LabelMapPrediction,
             inside: float = 0.5) -> LabelMapPrediction:
    """Split each nucleus of ``base`` along the nuclei of ``splitter`` inside it.

    A splitter nucleus counts for a base nucleus when at least ``inside`` of
    its area lies in it; a base nucleus holding two or more is divided by a
    watershed seeded with them (on the distance to the seeds, inside the base
    mask). Scores and classes stay the base nucleus's.
    """
    out = np.zeros_like(base.label_map)
    owner: List[int] = []
    areas = np.bincount(splitter.label_map.ravel(), minlength=len(splitter) + 1)
    la, lb, inter = label_overlap(base.label_map, splitter.label_map)  # sorted by la
    ok = inter >= inside * areas[lb]
    la, lb = la[ok], lb[ok]
    for lab, box in enumerate(ndimage.find_objects(base.label_map), start=1):
        if box is None:
            continue
        mask = base.label_map[box] == lab
        seeds = lb[np.searchsorted(la, lab):np.searchsorted(la, lab, 'right')]
        if len(seeds) < 2:
            owner.append(lab - 1)
            out[box][mask] = len(owner)
            continue
        local = np.where(mask, splitter.label_map[box], 0)
        markers = np.zeros(mask.shape, np.int32)
        for k, sid in enumerate(seeds, start=1):
            markers[local == sid] = k
        parts = watershed(ndimage.distance_transform_edt(markers == 0), markers, mask=mask)
        for k in range(1, len(seeds) + 1):
            owner.append(lab - 1)
            out[box][parts == k] = len(owner)
    label_map, kept = relabel(out, np.asarray(owner, np.int64))
    return LabelMapPrediction(label_map, np.asarray(base.scores)[kept],
                              np.asarray(base.classes)[kept])


@MODELS.register_module()
class NucleusEnsemble(BaseModel):
    """Predict with several trained models and combine their label maps.

    Args:
        members: ``dict(config=..., checkpoint=..., weight=1.0)`` each (the
            configs' models and, with ``tta``, their ``tta_model``), or
            ``dict(model=..., weight=1.0)``: a predictor's model config built as
            it is (no weights loaded: the classical segmenter, a wrapper of one).
        merge: ``'consensus'``, ``'probabilities'`` or ``'split'`` (module doc).
        tta: each member predicts with its own test-time augmentation (a name:
            with its config's view set ``tta_views_<name>``).
        match_iou: consensus matching IoU.
        vote_thr: consensus share of the total weight a pixel needs.
        score_thr: nuclei scoring below it (after merging) go.
        min_area: smallest nucleus kept after merging.
        data_preprocessor: unused (members preprocess their input).
    """

    def __init__(self, members: Sequence[dict], merge: str = 'consensus',
                 tta: Union[bool, str] = False, match_iou: float = 0.5, vote_thr: float = 0.5,
                 score_thr: float = 0.0, min_area: int = 10,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        if merge not in MERGES:
            raise ValueError(f'merge must be one of {MERGES}, got {merge!r}')
        if len(members) < 2 or (merge == 'split' and len(members) != 2):
            raise ValueError(f"an ensemble needs 2 members or more ('split': exactly 2), "
                             f'got {len(members)}')
        self.merge, self.match_iou, self.vote_thr = merge, match_iou, vote_thr
        self.score_thr, self.min_area = score_thr, min_area
        nets, modes, self.weights = [], set(), []
        for member in members:
            unknown = set(member) - {'config', 'checkpoint', 'model', 'weight'}
            if unknown or not ({'config', 'checkpoint'} <= set(member)) ^ ('model' in member):
                raise KeyError(f'an ensemble member is dict(config=..., checkpoint=..., '
                               f'weight=...) or dict(model=..., weight=...); got keys '
                               f'{sorted(member)}')
            if 'model' in member:
                net = MODELS.build(member['model'])
            else:
                cfg = load_config(member['config'])
                net = MODELS.build(predictor_cfg(cfg, tta=tta, tile=0))
                load_weights(net, member['checkpoint'])
                modes.add(config_input_mode(cfg))
            nets.append(net.eval())
            self.weights.append(float(member.get('weight', 1.0)))
        if len(modes) > 1:
            raise ValueError(f'ensemble members read images differently ({sorted(modes)}): '
                             'use one LoadNucleusImage mode in all their configs')
        if merge == 'probabilities':
            heads = {getattr(innermost(n), 'heads', None) for n in nets}
            if None in heads or len(heads) > 1 or (tta and any(
                    getattr(n, 'merge', '') != 'probabilities' for n in nets)):
                raise ValueError("merge='probabilities' needs members of one U-Net family with "
                                 f'the same heads, got {heads}')
        self.members = nets
        self.input_mode = modes.pop() if modes else 'rgb'

    def to(self, *args, **kwargs) -> 'NucleusEnsemble':
        """Move the members too: a plain list holds them (their weights are their own
        files, not the ensemble's), so ``nn.Module.to`` alone left them on the CPU."""
        for member in self.members:
            member.to(*args, **kwargs)
        return super().to(*args, **kwargs)

    def predict_label_map(self, img: np.ndarray, out_shape: Shape = None,
                          raw: bool = False) -> LabelMapPrediction:
        """The ensemble's prediction of one ``H x W x 3`` pipeline image (members predict at
        ``out_shape`` and, when ``raw``, raw; ``raw`` skips ``min_area`` too)."""
        if self.merge == 'probabilities':
            total = sum(self.weights)
            probs = sum(w * m.predict_probs(img, out_shape).astype(np.float64)
                        for w, m in zip(self.weights, self.members))
            merged = self.members[0].decode_probs((probs / total).astype(np.float32), raw=True)
        else:
            preds = [m.predict_label_map(img, out_shape, raw) for m in self.members]
            if self.merge == 'split':
                merged = split_by(preds[0], preds[1])
            else:
                merged = consensus_merge(preds, self.weights, self.match_iou, self.vote_thr)
        return filter_prediction(merged, self.score_thr, 0 if raw else self.min_area)

    def test_step(self, data: dict) -> list:
        return predict_batch(self, data)

    def val_step(self, data: dict) -> list:
        return self.test_step(data)

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        raise NotImplementedError('an ensemble of trained models only predicts (test_step)')
