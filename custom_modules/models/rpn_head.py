"""The RPN with an objectness floor at test time.

At 1024 x 1024 the area-scaled caps (:func:`~custom_modules.models.detector.rpn_caps_for_area`)
send 48,000 boxes into the proposals' NMS and 8,000 proposals into the box head, most of
them background the RPN itself scores near zero. ``test_cfg.rpn.score_thr`` drops the
boxes whose objectness is below it before the NMS, as MMDetection's one-stage heads use
their ``score_thr``; the caps still bound what is left. It is one number for all FPN
levels or one per level: the few coarse-level anchors are where large nuclei are found,
with objectness a plain floor would cut. Training's ``rpn_proposal`` has no
``score_thr``: the RoI sampler sees what MMDetection's RPN gives it.
"""
from typing import Sequence, Union

import torch
from mmdet.models.dense_heads import RPNHead
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData


def level_floors(score_thr: Union[float, Sequence[float]], num_levels: int) -> torch.Tensor:
    """``score_thr`` as one floor per level; refuses values outside [0, 1) or a list of
    another length than the levels."""
    floors = ([float(score_thr)] * num_levels if not isinstance(score_thr, (list, tuple))
              else [float(v) for v in score_thr])
    if len(floors) != num_levels or not all(0.0 <= v < 1.0 for v in floors):
        raise ValueError('model.test_cfg.rpn.score_thr must be a number in [0, 1) or one per '
                         f'FPN level ({num_levels}), got {score_thr}')
    return torch.tensor(floors)


@MODELS.register_module()
class NucleusRPNHead(RPNHead):
    """:class:`~mmdet.models.dense_heads.RPNHead` whose proposals at test time keep only
    boxes of objectness at least ``cfg.score_thr`` (a number, or one per level; absent or
    0: all, MMDetection's)."""

    def _bbox_post_process(self, results: InstanceData, cfg: ConfigDict,
                           rescale: bool = False, with_nms: bool = True,
                           img_meta: dict = None) -> InstanceData:
        floors = level_floors(cfg.get('score_thr', 0.0), self.prior_generator.num_levels)
        if bool((floors > 0).any()) and len(results):
            floor = floors.to(results.scores)[results.level_ids]
            keep = results.scores >= floor
            if not bool(keep.all()):
                results = results[keep]
        return super()._bbox_post_process(results, cfg, rescale=rescale, with_nms=with_nms,
                                          img_meta=img_meta)
