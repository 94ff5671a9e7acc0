# CPU-budget contour-aware U-Net (CAMUNet: nucleus, contour and marker heads,
# a decoder each) on the ImageNet MobileNetV2 encoder that the Mask R-CNN
# recipe uses (`make venv` converts it). The comparison behind the family found
# separate decoders and contour targets best with a pretrained encoder.
_base_ = ['./_base_/cpu_schedule.py', './_base_/dsb_dataset.py', './_base_/tta.py']

pretrained = 'work_dirs/pretrained/mobilenetv2_imagenet.pth'
heads = ('nucleus', 'contour', 'marker')

model = dict(
    type='NucleusUNet',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True,  # ImageNet statistics
                           pad_size_divisor=32,  # the encoder's deepest stride
                           # targets padded with the code the loss ignores (NucleusUNet.IGNORE)
                           pad_seg=True, seg_pad_value=255),
    encoder=dict(
        type='MobileNetV2',
        # layer1, 2, 3, 5, 7: 16, 24, 32, 96, 320 channels at strides 2, 4, 8, 16, 32.
        out_indices=(0, 1, 2, 4, 6),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,  # ImageNet batch statistics kept (small batches of crops)
        frozen_stages=1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    encoder_channels=(16, 24, 32, 96, 320),
    decoder_channels=(96, 64, 32, 24, 16),
    heads=heads,
    separate_decoders=True,
    stem_channels=16,
    norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
    # BCE + soft Dice per head; background between touching nuclei weighs 5x.
    loss=dict(bce=1.0, dice=1.0, gap_weight=5.0),
    decode=dict(method='watershed', nucleus_thr=0.5, marker_thr=0.5, min_marker_area=4),
    postprocess=dict(min_area=10, dilation_radius=0))

# The Mask R-CNN's training pipeline plus the U-Net's targets (one bit each),
# made after every geometric augmentation (_base_/dsb_dataset.py's pieces).
train_pipeline = [
    '{train_load}', '{augment}',
    dict(type='UNetTargets', contour_width=2, boundary_width=2, marker_margin=2, gap_width=3),
    '{pack}',
]
train_dataloader = dict(batch_size=4)

# The CPU schedule of _base_/cpu_schedule.py, fitted to the 2-hour budget at
# this model's speed: 1.23 s/iteration alone on 2 cores (bench/bench_train.py),
# so 4,800 iterations take ~100 min; validation and a checkpoint every 1,200.
max_iters = 4800
val_interval = 1200
warmup_iters = 150  # as this recipe was trained (half the base's 300)
# bfloat16 autocast on CPUs with bfloat16 instructions (AVX512-BF16 or AMX), float32
# elsewhere: 1.25 against 1.62 s/iteration in training there, fold 0 after 1,200
# iterations 0.5107 against 0.5134 (BENCHMARKS.md "Where an iteration goes").
optim_wrapper = dict(type='CPUBFloat16OptimWrapper', bf16='auto')

# Average the probabilities of identity, both flips and the half turn; --tta-views
# full: the 8 flips and quarter turns (U-Net practice: twice the time for +0.002).
tta_model = dict(views={{_base_.flip_views}}, merge='probabilities')
tta_views_full = {{_base_.d4_views}}

# Larger tiles than the Mask R-CNN's: the decoder's GroupNorm normalises by the
# statistics of its input, so a tile's probabilities differ from the whole
# image's everywhere in the tile (bench/bench_tile_locality.py, random weights:
# 3.5-3.7 % of a 512 tile's inner pixels by > 0.1; none with the whole image's
# GroupNorm statistics).
# Before tiles started on the stride grid, 512 tiles cost 0.048 on fold 0's
# 603 x 1272 image and 1024 tiles with 256 overlap 0.006 (bench/bench_tiling.py
# real; BENCHMARKS.md "Tiles: the stride grid, GroupNorm, ..."); 512 tiles on
# the grid are not measured yet (no trained U-Net in that session).
tile = dict(size=1024, overlap=256)

# The size probe (--diameter auto) never lets scale 1 win on its count alone: on nuclei
# 2-3x the training size this U-Net returns 20 or more confident fragments of 13-31 px,
# which would keep fold-0 images enlarged 3x unshrunk (-0.015 there; the Mask R-CNN and the
# ensemble return few; BENCHMARKS.md "Nucleus size").
nucleus_size = dict(trust_count=None)
