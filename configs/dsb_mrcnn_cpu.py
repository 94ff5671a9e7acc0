# CPU-budget recipe: the best score we found for at most 2 hours of training on
# 2 CPU cores (see BENCHMARKS.md for what it scores and the command behind it).
# No pretrained weights are reachable offline, so it trains from scratch:
# - a half-width ResNet-18 with GroupNorm (batch statistics of 2 crops are
#   too noisy for BatchNorm from scratch);
# - 'grey_dark' input: luminance, bright backgrounds inverted, contrast
#   stretched, so histology and brightfield look like fluorescence;
# - 256x256 crops, the solution's augmentations, stratum-balanced sampling.
_base_ = './dsb_mrcnn_r101.py'

crop_size = (256, 256)
channels = 128
max_iters = 3400  # ~1.3-1.9 s/iteration on 2 cores: 75-110 min plus two validations (BENCHMARKS.md)
norm_cfg = dict(type='GN', num_groups=16, requires_grad=True)

model = dict(
    backbone=dict(depth=18, base_channels=32, norm_cfg=norm_cfg, frozen_stages=-1,
                  norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=512),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels)),
    # 600 RoIs per image cost more than they teach a small model on 256 crops.
    train_cfg=dict(rpn_proposal=dict(nms_pre=2000, max_per_img=1000),
                   rcnn=dict(sampler=dict(num=256))),
    # A model trained for 2 hours is rarely 0.9 confident about a true nucleus.
    test_cfg=dict(rcnn=dict(score_thr=0.5)))

train_pipeline = [
    dict(type='LoadNucleusImage', mode='grey_dark'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomZoom', scale_range=(0.6, 1.6), aspect_range=(0.8, 1.25), pre_crop=crop_size),
    dict(type='InstanceSafeRandomCrop', crop_size=crop_size, min_area=4, max_instances=256),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRot90', prob=0.75),
    dict(type='RandomFreeRotate', max_angle=30.0, prob=0.3),
    dict(type='RandomChannelShift', max_shift=15.0, prob=0.3),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadNucleusImage', mode='grey_dark'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor', 'stratum')),
]
train_dataloader = dict(batch_size=2, num_workers=2, sampler=dict(_delete_=True, type='StratumBalancedSampler'),
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 2)
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
                     clip_grad=dict(max_norm=5.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=300),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=300, end=max_iters),
]
default_hooks = dict(checkpoint=dict(interval=max_iters // 2))

load_from = None
