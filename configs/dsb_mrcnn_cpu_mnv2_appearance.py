# The MobileNetV2 Mask R-CNN recipe (dsb_mrcnn_cpu_mnv2.py) with the appearance
# augmentations of _base_/appearance.py. Not a shipped recipe: a measured arm for
# the type-held-out split (data_prep/image_types.csv, prepare_dsb.py --hold-out-types).
_base_ = ['./dsb_mrcnn_cpu_mnv2.py', './_base_/appearance.py']

appearance = '{appearance_augment}'
train_load = '{colour_load}'
