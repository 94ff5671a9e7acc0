"""nucleiseg's MMDetection modules; importing this package registers them all.

Subpackages follow the data's path, lowest layer first (a module imports only
from its own layer or lower ones; ``tests/test_layers.py`` checks it):

- ``structures``: the label map every model predicts, label-map ops, RLE, tile grids,
  the predictor helpers;
- ``data``: image reading, the dataset and sampler, training transforms, U-Net targets;
- ``models``: Mask R-CNN, soft instances, the U-Net and its decoding, the classical peer;
- ``evaluation``: the DSB metric, per-nucleus measurements;
- ``visualization``: outlines and overlays;
- ``io``: all-or-nothing writes, safe unpickling, exporters, the Kaggle submission;
- ``engine``: hooks, checkpoints, config checks, distributed start, run settings, CLI checks;
- ``inference``: consensus, TTA, tiling, ensembles, rescaling, building a predictor
  from a config, the model zoo, the inferencer;
- ``tuning``: post-processing thresholds tuned on cached raw predictions.
"""
from custom_modules.data import appearance  # noqa: F401  (appearance augmentations)
from custom_modules.data.datasets import LoadNucleusImage, NucleusDataset, StratumBalancedSampler
from custom_modules.data.transforms import (InstanceSafeRandomCrop, RandomChannelShift,
                                            RandomFreeRotate, RandomRot90, RandomZoom)
from custom_modules.data.unet_targets import UNetTargets
from custom_modules.engine import checkpoint  # noqa: F401  (re-registers mmengine's local loader)
from custom_modules.engine.hooks import IterationSeedHook, NucleusOverlayHook
from custom_modules.engine.loops import ResumingIterBasedTrainLoop
from custom_modules.engine.mixed_precision import CPUBFloat16OptimWrapper
from custom_modules.evaluation.metric import DSBMetric
from custom_modules.inference.consensus import consensus_merge
from custom_modules.inference.diameter import NucleusRescaledModel
from custom_modules.inference.ensemble import NucleusEnsemble
from custom_modules.inference.tiling import NucleusTiledModel, predict_tiled
from custom_modules.inference.tta import NucleusTTAModel
from custom_modules.models.detector import NucleusMaskRCNN
from custom_modules.models.roi_extractor import NucleusRoIExtractor
from custom_modules.models.rpn_head import NucleusRPNHead
from custom_modules.models.unet import NucleusUNet, PlainUNetEncoder
from custom_modules.structures.label_map import LabelMapPrediction
from custom_modules.visualization.val_overlays import NucleusValOverlayHook

__all__ = [
    'LoadNucleusImage', 'NucleusDataset', 'StratumBalancedSampler', 'NucleusMaskRCNN',
    'NucleusRPNHead', 'NucleusRoIExtractor', 'NucleusOverlayHook', 'DSBMetric',
    'InstanceSafeRandomCrop',
    'RandomChannelShift', 'RandomFreeRotate', 'RandomRot90', 'RandomZoom', 'NucleusTTAModel',
    'NucleusTiledModel', 'LabelMapPrediction', 'consensus_merge', 'predict_tiled',
    'NucleusValOverlayHook', 'IterationSeedHook', 'NucleusUNet', 'PlainUNetEncoder',
    'UNetTargets', 'NucleusEnsemble', 'NucleusRescaledModel', 'CPUBFloat16OptimWrapper',
    'ResumingIterBasedTrainLoop'
]
