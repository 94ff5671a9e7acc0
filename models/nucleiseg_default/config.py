# configs/dsb_mrcnn_cpu_mnv2.py as it trained (bases merged in), with the thresholds
# tuned on fold 0 (score_thr 0.9, mask_thr_binary 0.45, min_area 30; checked on fold 1)
# and rpn_caps_area 512 * 512: README, "The shipped model".
ann_dir = 'data/generated/dsb/'
auto_scale_lr = dict(base_batch_size=2, enable=False)
backend_args = None
channels = 128
crop_size = (
    256,
    256,
)
custom_imports = dict(
    allow_failed_imports=False, imports=[
        'custom_modules',
    ])
data_root = 'data/coco/'
dataset_type = 'CocoDataset'
default_hooks = dict(
    checkpoint=dict(
        _scope_='mmdet',
        by_epoch=False,
        interval=1700,
        max_keep_ckpts=3,
        rule='greater',
        save_best='dsb/score',
        type='CheckpointHook'),
    iter_seed=dict(type='IterationSeedHook'),
    logger=dict(
        _scope_='mmdet',
        interval=50,
        log_metric_by_epoch=False,
        type='LoggerHook'),
    param_scheduler=dict(_scope_='mmdet', type='ParamSchedulerHook'),
    sampler_seed=dict(_scope_='mmdet', type='DistSamplerSeedHook'),
    timer=dict(_scope_='mmdet', type='IterTimerHook'),
    visualization=dict(_scope_='mmdet', type='DetVisualizationHook'))
default_scope = 'mmdet'
env_cfg = dict(
    cudnn_benchmark=False,
    dist_cfg=dict(backend='nccl'),
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
fold = 0
img_dir = '../shared/dsb2018/stage1_train/'
iters_per_epoch = 332
launcher = 'none'
load_from = None
log_level = 'INFO'
log_processor = dict(
    _scope_='mmdet', by_epoch=False, type='LogProcessor', window_size=50)
max_iters = 3400
model = dict(
    _scope_='mmdet',
    backbone=dict(
        frozen_stages=2,
        init_cfg=dict(
            checkpoint='work_dirs/pretrained/mobilenetv2_imagenet.pth',
            type='Pretrained'),
        norm_cfg=dict(requires_grad=True, type='BN'),
        norm_eval=True,
        out_indices=(
            1,
            2,
            4,
            6,
        ),
        type='MobileNetV2'),
    data_preprocessor=dict(
        bgr_to_rgb=True,
        mean=[
            123.7,
            116.8,
            103.9,
        ],
        pad_mask=True,
        pad_size_divisor=64,
        std=[
            58.395,
            57.12,
            57.375,
        ],
        type='DetDataPreprocessor'),
    neck=dict(
        in_channels=[
            24,
            32,
            96,
            320,
        ],
        num_outs=5,
        out_channels=128,
        type='FPN'),
    postprocess=dict(dilation_radius=0, min_area=30),
    roi_head=dict(
        bbox_head=dict(
            bbox_coder=dict(
                target_means=[
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                ],
                target_stds=[
                    0.1,
                    0.1,
                    0.2,
                    0.2,
                ],
                type='DeltaXYWHBBoxCoder'),
            fc_out_channels=512,
            in_channels=128,
            loss_bbox=dict(loss_weight=1.0, type='L1Loss'),
            loss_cls=dict(
                loss_weight=1.0, type='CrossEntropyLoss', use_sigmoid=False),
            num_classes=1,
            reg_class_agnostic=False,
            roi_feat_size=7,
            type='Shared2FCBBoxHead'),
        bbox_roi_extractor=dict(
            featmap_strides=[
                4,
                8,
                16,
                32,
            ],
            out_channels=128,
            roi_layer=dict(output_size=7, sampling_ratio=0, type='RoIAlign'),
            type='SingleRoIExtractor'),
        mask_head=dict(
            conv_out_channels=128,
            in_channels=128,
            loss_mask=dict(
                loss_weight=1.0, type='CrossEntropyLoss', use_mask=True),
            num_classes=1,
            num_convs=4,
            type='FCNMaskHead'),
        mask_roi_extractor=dict(
            featmap_strides=[
                4,
                8,
                16,
                32,
            ],
            out_channels=128,
            roi_layer=dict(output_size=14, sampling_ratio=0, type='RoIAlign'),
            type='SingleRoIExtractor'),
        test_cfg=dict(
            mask_thr_binary=0.45,
            max_per_img=512,
            nms=dict(iou_threshold=0.2, type='nms'),
            score_thr=0.9),
        train_cfg=dict(
            assigner=dict(
                ignore_iof_thr=-1,
                match_low_quality=True,
                min_pos_iou=0.5,
                neg_iou_thr=0.5,
                pos_iou_thr=0.5,
                type='MaxIoUAssigner'),
            debug=False,
            mask_size=28,
            pos_weight=-1,
            sampler=dict(
                add_gt_as_proposals=True,
                neg_pos_ub=-1,
                num=256,
                pos_fraction=0.33,
                type='RandomSampler')),
        type='StandardRoIHead'),
    rpn_caps_area=262144,
    rpn_head=dict(
        anchor_generator=dict(
            ratios=[
                0.5,
                1.0,
                2.0,
            ],
            scales=[
                2,
            ],
            strides=[
                4,
                8,
                16,
                32,
                64,
            ],
            type='AnchorGenerator'),
        bbox_coder=dict(
            target_means=[
                0.0,
                0.0,
                0.0,
                0.0,
            ],
            target_stds=[
                1.0,
                1.0,
                1.0,
                1.0,
            ],
            type='DeltaXYWHBBoxCoder'),
        feat_channels=128,
        in_channels=128,
        loss_bbox=dict(loss_weight=1.0, type='L1Loss'),
        loss_cls=dict(
            loss_weight=1.0, type='CrossEntropyLoss', use_sigmoid=True),
        type='RPNHead'),
    test_cfg=dict(
        rcnn=dict(
            mask_thr_binary=0.45,
            max_per_img=512,
            nms=dict(iou_threshold=0.2, type='nms'),
            score_thr=0.9),
        rpn=dict(
            max_per_img=2000,
            min_bbox_size=0,
            nms=dict(iou_threshold=0.7, type='nms'),
            nms_pre=4000)),
    train_cfg=dict(
        rcnn=dict(
            assigner=dict(
                ignore_iof_thr=-1,
                match_low_quality=True,
                min_pos_iou=0.5,
                neg_iou_thr=0.5,
                pos_iou_thr=0.5,
                type='MaxIoUAssigner'),
            debug=False,
            mask_size=28,
            pos_weight=-1,
            sampler=dict(
                add_gt_as_proposals=True,
                neg_pos_ub=-1,
                num=256,
                pos_fraction=0.33,
                type='RandomSampler')),
        rpn=dict(
            allowed_border=-1,
            assigner=dict(
                ignore_iof_thr=-1,
                match_low_quality=True,
                min_pos_iou=0.3,
                neg_iou_thr=0.3,
                pos_iou_thr=0.7,
                type='MaxIoUAssigner'),
            debug=False,
            pos_weight=-1,
            sampler=dict(
                add_gt_as_proposals=False,
                neg_pos_ub=-1,
                num=256,
                pos_fraction=0.5,
                type='RandomSampler')),
        rpn_proposal=dict(
            max_per_img=1000,
            min_bbox_size=0,
            nms=dict(iou_threshold=0.7, type='nms'),
            nms_pre=2000)),
    type='NucleusMaskRCNN')
norm_cfg = dict(num_groups=16, requires_grad=True, type='GN')
num_classes = 1
optim_wrapper = dict(
    clip_grad=dict(max_norm=5.0, norm_type=2),
    optimizer=dict(lr=0.001, type='AdamW', weight_decay=0.05),
    type='OptimWrapper')
param_scheduler = [
    dict(begin=0, by_epoch=False, end=300, start_factor=0.01, type='LinearLR'),
    dict(
        begin=300,
        by_epoch=False,
        end=3400,
        eta_min=1e-05,
        type='CosineAnnealingLR'),
]
pretrained = 'work_dirs/pretrained/mobilenetv2_imagenet.pth'
randomness = dict(seed=None)
resume = False
test_cfg = dict(_scope_='mmdet', type='TestLoop')
test_dataloader = dict(
    batch_size=1,
    dataset=dict(
        _scope_='mmdet',
        ann_file='data/generated/dsb/val_fold0.json',
        backend_args=None,
        data_prefix=dict(img='../shared/dsb2018/stage1_train/'),
        data_root='',
        pipeline=[
            dict(mode='grey_dark', type='LoadNucleusImage'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(
                meta_keys=(
                    'img_id',
                    'img_path',
                    'ori_shape',
                    'img_shape',
                    'scale_factor',
                    'stratum',
                ),
                type='PackDetInputs'),
        ],
        test_mode=True,
        type='NucleusDataset'),
    drop_last=False,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(_scope_='mmdet', shuffle=False, type='DefaultSampler'))
test_evaluator = dict(segm_ap=True, type='DSBMetric')
test_pipeline = [
    dict(mode='grey_dark', type='LoadNucleusImage'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        meta_keys=(
            'img_id',
            'img_path',
            'ori_shape',
            'img_shape',
            'scale_factor',
            'stratum',
        ),
        type='PackDetInputs'),
]
tile = dict(overlap=128, size=512, tile_above=1400)
train_cfg = dict(
    max_iters=3400, type='IterBasedTrainLoop', val_interval=100000)
train_dataloader = dict(
    batch_sampler=dict(_scope_='mmdet', type='AspectRatioBatchSampler'),
    batch_size=2,
    dataset=dict(
        _scope_='mmdet',
        ann_file='data/generated/dsb/full.json',
        backend_args=None,
        data_prefix=dict(img='../shared/dsb2018/stage1_train/'),
        data_root='',
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=[
            dict(mode='grey_dark', type='LoadNucleusImage'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(
                aspect_range=(
                    0.8,
                    1.25,
                ),
                pre_crop=(
                    256,
                    256,
                ),
                scale_range=(
                    0.6,
                    1.6,
                ),
                type='RandomZoom'),
            dict(
                crop_size=(
                    256,
                    256,
                ),
                max_instances=256,
                min_area=4,
                type='InstanceSafeRandomCrop'),
            dict(direction='horizontal', prob=0.5, type='RandomFlip'),
            dict(direction='vertical', prob=0.5, type='RandomFlip'),
            dict(prob=0.75, type='RandomRot90'),
            dict(max_angle=30.0, prob=0.3, type='RandomFreeRotate'),
            dict(max_shift=15.0, prob=0.3, type='RandomChannelShift'),
            dict(type='PackDetInputs'),
        ],
        type='NucleusDataset'),
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='StratumBalancedSampler'))
train_pipeline = [
    dict(mode='grey_dark', type='LoadNucleusImage'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        aspect_range=(
            0.8,
            1.25,
        ),
        pre_crop=(
            256,
            256,
        ),
        scale_range=(
            0.6,
            1.6,
        ),
        type='RandomZoom'),
    dict(
        crop_size=(
            256,
            256,
        ),
        max_instances=256,
        min_area=4,
        type='InstanceSafeRandomCrop'),
    dict(direction='horizontal', prob=0.5, type='RandomFlip'),
    dict(direction='vertical', prob=0.5, type='RandomFlip'),
    dict(prob=0.75, type='RandomRot90'),
    dict(max_angle=30.0, prob=0.3, type='RandomFreeRotate'),
    dict(max_shift=15.0, prob=0.3, type='RandomChannelShift'),
    dict(type='PackDetInputs'),
]
tta_model = dict(
    match_iou=0.5,
    type='NucleusTTAModel',
    views=[
        dict(),
        dict(flip='horizontal'),
        dict(flip='vertical'),
        dict(rot90=1),
        dict(rot90=2),
        dict(rot90=3),
        dict(flip='horizontal', rot90=1),
        dict(flip='vertical', rot90=1),
        dict(scale=0.75),
        dict(scale=1.25),
        dict(scale=1.5),
        dict(scale=2.0),
        dict(shift=(
            20,
            20,
            20,
        )),
        dict(shift=(
            -20,
            -20,
            -20,
        )),
        dict(shift=(
            20,
            0,
            -20,
        )),
    ],
    vote_thr=0.5)
tta_views = [
    dict(),
    dict(flip='horizontal'),
    dict(flip='vertical'),
    dict(rot90=1),
    dict(rot90=2),
    dict(rot90=3),
    dict(flip='horizontal', rot90=1),
    dict(flip='vertical', rot90=1),
    dict(scale=0.75),
    dict(scale=1.25),
    dict(scale=1.5),
    dict(scale=2.0),
    dict(shift=(
        20,
        20,
        20,
    )),
    dict(shift=(
        -20,
        -20,
        -20,
    )),
    dict(shift=(
        20,
        0,
        -20,
    )),
]
val_cfg = dict(_scope_='mmdet', type='ValLoop')
val_dataloader = dict(
    batch_size=1,
    dataset=dict(
        _scope_='mmdet',
        ann_file='data/generated/dsb/val_fold0.json',
        backend_args=None,
        data_prefix=dict(img='../shared/dsb2018/stage1_train/'),
        data_root='',
        pipeline=[
            dict(mode='grey_dark', type='LoadNucleusImage'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(
                meta_keys=(
                    'img_id',
                    'img_path',
                    'ori_shape',
                    'img_shape',
                    'scale_factor',
                    'stratum',
                ),
                type='PackDetInputs'),
        ],
        test_mode=True,
        type='NucleusDataset'),
    drop_last=False,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(_scope_='mmdet', shuffle=False, type='DefaultSampler'))
val_evaluator = dict(type='DSBMetric')
vis_backends = [
    dict(_scope_='mmdet', type='LocalVisBackend'),
]
visualizer = dict(
    _scope_='mmdet',
    name='visualizer',
    type='DetLocalVisualizer',
    vis_backends=[
        dict(type='LocalVisBackend'),
    ])
work_dir = 'work_dirs/mnv2_all'
