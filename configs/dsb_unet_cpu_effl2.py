# dsb_unet_cpu_effl0.py on EfficientNet-Lite2 (width x1.1, depth x1.2: 21 blocks).
_base_ = './dsb_unet_cpu_effl0.py'

pretrained = 'work_dirs/pretrained/efficientnet_lite2_imagenet.pth'

model = dict(
    encoder=dict(arch='lite2', init_cfg=dict(checkpoint=pretrained)),
    # layer1, 2, 3, 5, 7 of lite2: 16, 24, 48, 120, 352 channels.
    encoder_channels=(16, 24, 48, 120, 352))
