# The 2018 Data Science Bowl 3rd-place solution (one Matterport Mask R-CNN R101)
# reproduced in MMDetection. Comments name the solution's setting each value
# comes from (Matterport config names in capitals).
# The 15 test-time views of the solution's second idea, and tiling: _base_/tta.py.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r101_fpn_2x_coco.py', './_base_/tta.py']

custom_imports = dict(imports=['custom_modules'], allow_failed_imports=False)

num_classes = 1  # NUM_CLASSES = 1 + background: 'nucleus'
ann_dir = 'data/generated/dsb/'  # OUT_DIR of data_prep/prepare_dsb.py
img_dir = '../shared/dsb2018/stage1_train/'  # its SRC: file_name is relative to it
fold = 0
crop_size = (512, 512)  # IMAGE_SHAPE: training on 512x512 crops

model = dict(
    type='NucleusMaskRCNN',
    # Overlap removal always; dilation (radius in px) is the cheap TTA stand-in.
    postprocess=dict(min_area=10, dilation_radius=0),
    data_preprocessor=dict(
        # MEAN_PIXEL of the solution. Matterport divides by nothing; we keep the
        # std of the COCO checkpoint we start from, which expects that scale.
        mean=[123.7, 116.8, 103.9],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=64),  # inference on the whole image padded to a multiple of 64
    rpn_head=dict(
        # RPN_ANCHOR_SCALES (8, 16, 32, 64, 128) on BACKBONE_STRIDES (4..64):
        # base size = stride x 2, one size per level; RPN_ANCHOR_RATIOS.
        anchor_generator=dict(scales=[2], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes),
        # USE_MINI_MASK (56x56 ground-truth masks) has no MMDetection
        # equivalent: mask targets are cut from the full masks per RoI (28x28).
        mask_head=dict(num_classes=num_classes)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=256)),  # RPN_TRAIN_ANCHORS_PER_IMAGE
        rpn_proposal=dict(nms_pre=4000, max_per_img=2000,  # POST_NMS_ROIS_TRAINING
                          nms=dict(iou_threshold=0.7)),  # RPN_NMS_THRESHOLD
        # TRAIN_ROIS_PER_IMAGE = 600, ROI_POSITIVE_RATIO = 0.33
        rcnn=dict(sampler=dict(num=600, pos_fraction=0.33))),
    test_cfg=dict(
        rpn=dict(nms_pre=4000, max_per_img=2000,  # POST_NMS_ROIS_INFERENCE: enough for 512
                 nms=dict(iou_threshold=0.7)),
        rcnn=dict(score_thr=0.9,  # DETECTION_MIN_CONFIDENCE
                  nms=dict(iou_threshold=0.2),  # DETECTION_NMS_THRESHOLD
                  max_per_img=512,  # DETECTION_MAX_INSTANCES
                  mask_thr_binary=0.5)))

train_pipeline = [
    dict(type='LoadNucleusImage'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    # Strong zoom in/out with aspect changes, before the crop (the solution's
    # scale augmentation); pre_crop keeps memory bounded on large images.
    dict(type='RandomZoom', scale_range=(0.5, 2.0), aspect_range=(0.75, 1.33), pre_crop=crop_size),
    # MAX_GT_INSTANCES = 256 per crop.
    dict(type='InstanceSafeRandomCrop', crop_size=crop_size, min_area=4, max_instances=256),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRot90', prob=0.75),
    dict(type='RandomFreeRotate', max_angle=45.0, prob=0.5),
    dict(type='RandomChannelShift', max_shift=20.0, prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadNucleusImage'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor', 'stratum')),
]

train_dataloader = dict(
    batch_size=2,  # IMAGES_PER_GPU
    num_workers=2,
    # The solution's second step balanced image kinds: use
    # sampler=dict(_delete_=True, type='StratumBalancedSampler') for it.
    dataset=dict(type='NucleusDataset', data_root='', ann_file=f'{ann_dir}train_fold{fold}.json',
                 data_prefix=dict(img=img_dir), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2,
    dataset=dict(type='NucleusDataset', data_root='', ann_file=f'{ann_dir}val_fold{fold}.json',
                 data_prefix=dict(img=img_dir), pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(_delete_=True, type='DSBMetric')
test_evaluator = dict(_delete_=True, type='DSBMetric', segm_ap=True)

# 120 epochs of STEPS_PER_EPOCH = 332 iterations.
iters_per_epoch = 332
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=120 * iters_per_epoch,
                 val_interval=10 * iters_per_epoch)
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.001, momentum=0.9, weight_decay=1e-4),  # LEARNING_RATE, LEARNING_MOMENTUM, WEIGHT_DECAY
    clip_grad=dict(max_norm=5.0, norm_type=2))  # GRADIENT_CLIP_NORM
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=500),
    # 0.001 falling to 3e-5 by the end of training.
    dict(type='CosineAnnealingLR', eta_min=3e-5, by_epoch=False, begin=500,
         end=120 * iters_per_epoch)
]
auto_scale_lr = dict(enable=False, base_batch_size=2)  # one GPU x 2 images

default_hooks = dict(
    # Iteration-based: validation scores are logged at their iteration, not at "epoch 0".
    logger=dict(interval=50, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=10 * iters_per_epoch, max_keep_ckpts=3,
                    save_best='dsb/score', rule='greater'),
    # torch's RNG seeded per step: `--resume` then continues as if uninterrupted
    # (README, "Reproducible runs"); set randomness.seed for a repeatable run.
    iter_seed=dict(type='IterationSeedHook'))
randomness = dict(seed=None)  # mmengine's default, a new seed per run; a number repeats runs
log_processor = dict(by_epoch=False)

# COCO Mask R-CNN R101-FPN 2x (bbox 40.8, segm 36.6). Offline: set
# `--cfg-options load_from=None model.backbone.init_cfg=None` (from scratch)
# or `load_from=/path/to/local.pth`.
load_from = 'https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r101_fpn_2x_coco/mask_rcnn_r101_fpn_2x_coco_bbox_mAP-0.408__segm_mAP-0.366_20200505_071027-14b391c7.pth'  # noqa: E501
