"""The RoI extractor with its own RoIAlign sampling at test time.

At 1024 x 1024 the box head's RoIAlign (mmcv's single-threaded CPU kernel) is the largest
cost of one view: 4,000 proposals, each of its 7 x 7 bins averaged over up to 4 x 4
bilinear samples (``sampling_ratio=0``: as many as the RoI is wide in feature pixels over
7). ``test_sampling_ratio=1`` takes one sample per bin at test time, as Matterport's
``crop_and_resize`` in the 3rd-place solution; training keeps the config's
``roi_layer.sampling_ratio``. Measured in BENCHMARKS.md ("Where one view goes").
"""
from typing import List, Optional

from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.registry import MODELS


@MODELS.register_module()
class NucleusRoIExtractor(SingleRoIExtractor):
    """:class:`~mmdet.models.roi_heads.roi_extractors.SingleRoIExtractor` whose RoIAlign
    layers sample ``test_sampling_ratio`` points per bin side in eval mode.

    Args:
        roi_layer: the RoI layer config (``sampling_ratio`` is the training one).
        out_channels: output channels of the RoI layers.
        featmap_strides: strides of the input feature maps.
        finest_scale: scale threshold of mapping to level 0.
        test_sampling_ratio: samples per bin side in eval mode (``None``: the training one;
            0: adaptive, as mmcv).
        init_cfg: initialisation config.
    """

    def __init__(self, roi_layer: dict, out_channels: int, featmap_strides: List[int],
                 finest_scale: int = 56, test_sampling_ratio: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(roi_layer=roi_layer, out_channels=out_channels,
                         featmap_strides=featmap_strides, finest_scale=finest_scale,
                         init_cfg=init_cfg)
        if test_sampling_ratio is not None and (isinstance(test_sampling_ratio, bool) or
                                                not isinstance(test_sampling_ratio, int) or
                                                test_sampling_ratio < 0):
            raise ValueError('roi_extractor test_sampling_ratio must be an integer >= 0 '
                             f'or None, got {test_sampling_ratio!r}')
        self.train_sampling_ratio = self.roi_layers[0].sampling_ratio
        self.test_sampling_ratio = (self.train_sampling_ratio if test_sampling_ratio is None
                                    else test_sampling_ratio)

    def train(self, mode: bool = True) -> 'NucleusRoIExtractor':
        """Set the mode, and the RoI layers' sampling ratio with it."""
        super().train(mode)
        ratio = self.train_sampling_ratio if mode else self.test_sampling_ratio
        for layer in self.roi_layers:
            layer.sampling_ratio = ratio
        return self
