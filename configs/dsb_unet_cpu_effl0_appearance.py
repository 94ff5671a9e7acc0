# The EfficientNet-Lite0 U-Net arm (dsb_unet_cpu_effl0.py) with the appearance
# augmentations of _base_/appearance.py: the two U-Net arms that each gained on the
# type-held-out split at 2,400 iterations (BENCHMARKS.md, "Held-out image types"),
# together. A measured arm, not a shipped recipe.
_base_ = ['./dsb_unet_cpu_effl0.py', './_base_/appearance.py']

appearance = '{appearance_augment}'
train_load = '{colour_load}'
