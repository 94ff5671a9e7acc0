# The MobileNetV2 Mask R-CNN recipe (dsb_mrcnn_cpu_mnv2.py) on the ImageNet
# EfficientNet-Lite0 backbone (_base_/efficientnet_lite0.py): same crops, heads,
# schedule, augmentations and frozen strides.
_base_ = ['./dsb_mrcnn_cpu_mnv2.py', './_base_/efficientnet_lite0.py']

pretrained = _base_.efficientnet_lite0.pretrained

model = dict(
    data_preprocessor=_base_.efficientnet_lite0.data_preprocessor,
    backbone=dict(
        _delete_=True,
        **_base_.efficientnet_lite0.encoder,
        # layer2, layer3, layer5, layer7: 24, 40, 112, 320 channels at strides 4, 8, 16, 32.
        out_indices=(1, 2, 4, 6),
        frozen_stages=2),  # stem, layer1 and layer2 (strides 2-4), as the MobileNetV2 recipe
    neck=dict(in_channels=[24, 40, 112, 320]))
