"""The segmenters: Mask R-CNN and its soft instances, the U-Net and its decoding,
the classical peer."""
