"""nucleiseg's MMDetection modules; importing this package registers them all."""
from . import checkpoint  # noqa: F401  (re-registers mmengine's local loader)
from .datasets import LoadNucleusImage, NucleusDataset, StratumBalancedSampler
from .detector import NucleusMaskRCNN
from .hooks import NucleusOverlayHook
from .metric import DSBMetric
from .transforms import (InstanceSafeRandomCrop, RandomChannelShift, RandomFreeRotate,
                         RandomRot90, RandomZoom)
from .tta import NucleusTTAModel, NucleusTTAViews

__all__ = [
    'LoadNucleusImage', 'NucleusDataset', 'StratumBalancedSampler', 'NucleusMaskRCNN',
    'NucleusOverlayHook', 'DSBMetric', 'InstanceSafeRandomCrop', 'RandomChannelShift',
    'RandomFreeRotate', 'RandomRot90', 'RandomZoom', 'NucleusTTAModel', 'NucleusTTAViews'
]
