"""nucleiseg's MMDetection modules; importing this package registers them all."""
from . import checkpoint  # noqa: F401  (re-registers mmengine's local loader)
from .consensus import consensus_merge
from .datasets import LoadNucleusImage, NucleusDataset, StratumBalancedSampler
from .detector import NucleusMaskRCNN
from .diameter import NucleusRescaledModel
from .ensemble import NucleusEnsemble
from .hooks import IterationSeedHook, NucleusOverlayHook
from .label_map import LabelMapPrediction
from .metric import DSBMetric
from .tiling import NucleusTiledModel, predict_tiled
from .transforms import (InstanceSafeRandomCrop, RandomChannelShift, RandomFreeRotate,
                         RandomRot90, RandomZoom)
from .tta import NucleusTTAModel
from .unet import NucleusUNet, PlainUNetEncoder
from .unet_targets import UNetTargets
from .val_overlays import NucleusValOverlayHook

__all__ = [
    'LoadNucleusImage', 'NucleusDataset', 'StratumBalancedSampler', 'NucleusMaskRCNN',
    'NucleusOverlayHook', 'DSBMetric', 'InstanceSafeRandomCrop', 'RandomChannelShift',
    'RandomFreeRotate', 'RandomRot90', 'RandomZoom', 'NucleusTTAModel', 'NucleusTiledModel',
    'LabelMapPrediction', 'consensus_merge', 'predict_tiled', 'NucleusValOverlayHook',
    'IterationSeedHook', 'NucleusUNet', 'PlainUNetEncoder', 'UNetTargets', 'NucleusEnsemble',
    'NucleusRescaledModel'
]
