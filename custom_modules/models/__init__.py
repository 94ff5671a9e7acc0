"""The segmenters: Mask R-CNN (its RPN with a test-time objectness floor) and its soft
instances, the U-Net and its decoding, the classical peer; the EfficientNet-Lite encoder."""
from custom_modules.models import efficientnet_lite  # noqa: F401  (registers EfficientNetLite)
