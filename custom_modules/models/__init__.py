"""The segmenters: Mask R-CNN (its RPN with a test-time objectness floor, its RoI extractor
with a test-time sampling ratio) and its soft instances, the U-Net and its decoding, the
classical peer; the EfficientNet-Lite encoder."""
from custom_modules.models import efficientnet_lite  # noqa: F401  (registers EfficientNetLite)
