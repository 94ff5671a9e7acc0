# dsb_unet_cpu_effl0.py on EfficientNet-Lite1 (depth x1.1: 21 blocks, the same channels).
_base_ = './dsb_unet_cpu_effl0.py'

pretrained = 'work_dirs/pretrained/efficientnet_lite1_imagenet.pth'

model = dict(encoder=dict(arch='lite1', init_cfg=dict(checkpoint=pretrained)))
