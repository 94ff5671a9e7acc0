# The contour-aware U-Net recipe (dsb_unet_cpu.py) on the ImageNet EfficientNet-Lite0
# encoder (_base_/efficientnet_lite0.py) in place of MobileNetV2: same decoders, heads,
# schedule and augmentations.
_base_ = ['./dsb_unet_cpu.py', './_base_/efficientnet_lite0.py']

pretrained = _base_.efficientnet_lite0.pretrained

model = dict(
    data_preprocessor=_base_.efficientnet_lite0.data_preprocessor,
    encoder=dict(
        _delete_=True,
        **_base_.efficientnet_lite0.encoder,
        # layer1, 2, 3, 5, 7: 16, 24, 40, 112, 320 channels at strides 2, 4, 8, 16, 32.
        out_indices=(0, 1, 2, 4, 6),
        frozen_stages=1),  # the stem and layer1, as the MobileNetV2 recipe
    encoder_channels=(16, 24, 40, 112, 320))
