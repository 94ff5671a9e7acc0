# The 2018 Data Science Bowl 3rd-place solution (one Matterport Mask R-CNN R101)
# reproduced in MMDetection: its model (_base_/dsb_mask_rcnn.py), data with its
# crops and augmentations, its schedule, its 15 test-time views (_base_/tta.py's
# tta_views_full; the CPU recipes' --tta default is 5 of them).
# Comments name the solution's setting each value comes from.
_base_ = ['./_base_/dsb_mask_rcnn.py', './_base_/dsb_dataset.py', './_base_/runtime.py',
          './_base_/tta.py']

crop_size = (512, 512)  # IMAGE_SHAPE: training on 512x512 crops
input_mode = 'rgb'  # the image as it is (the CPU recipes use 'grey_dark')
# The base's pieces (load, pack) around the solution's stronger augmentations.
augment = [
    # Strong zoom in/out with aspect changes, before the crop (the solution's
    # scale augmentation); pre_crop keeps memory bounded on large images.
    dict(type='RandomZoom', scale_range=(0.5, 2.0), aspect_range=(0.75, 1.33),
         pre_crop='{crop_size}'),
    # MAX_GT_INSTANCES = 256 per crop.
    dict(type='InstanceSafeRandomCrop', crop_size='{crop_size}', min_area=4, max_instances=256),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRot90', prob=0.75),
    dict(type='RandomFreeRotate', max_angle=45.0, prob=0.5),
    dict(type='RandomChannelShift', max_shift=20.0, prob=0.5),
]
train_dataloader = dict(
    batch_size=2,  # IMAGES_PER_GPU
    # The solution's first step samples images uniformly; its second step
    # balanced image kinds (the base's StratumBalancedSampler, which the CPU recipes use).
    sampler=dict(type='DefaultSampler', shuffle=True))

# 120 epochs of STEPS_PER_EPOCH = 332 iterations.
iters_per_epoch = 332
train_cfg = dict(type='ResumingIterBasedTrainLoop', max_iters=120 * iters_per_epoch,
                 val_interval=10 * iters_per_epoch)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.001, momentum=0.9, weight_decay=1e-4),  # LEARNING_RATE, LEARNING_MOMENTUM, WEIGHT_DECAY
    clip_grad=dict(max_norm=5.0, norm_type=2))  # GRADIENT_CLIP_NORM
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=500),
    # 0.001 falling to 3e-5 by the end of training.
    dict(type='CosineAnnealingLR', eta_min=3e-5, by_epoch=False, begin=500,
         end=120 * iters_per_epoch)
]
auto_scale_lr = dict(enable=False, base_batch_size=2)  # one GPU x 2 images
default_hooks = dict(checkpoint=dict(interval=10 * iters_per_epoch))

# COCO Mask R-CNN R101-FPN 2x (bbox 40.8, segm 36.6). Offline: set
# `--cfg-options load_from=None model.backbone.init_cfg=None` (from scratch)
# or `load_from=/path/to/local.pth`.
load_from = 'https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r101_fpn_2x_coco/mask_rcnn_r101_fpn_2x_coco_bbox_mAP-0.408__segm_mAP-0.366_20200505_071027-14b391c7.pth'  # noqa: E501

tta_model = dict(views={{_base_.tta_views_full}})  # the solution's 15 views
