# A tiny Mask R-CNN that trains a few iterations on the bundled sample in
# seconds on a CPU (like detectron2's instant_test): `make demo` and the tests
# exercise the whole chain with it. Its scores mean nothing.
_base_ = './dsb_mrcnn_r101.py'

ann_dir = 'work_dirs/demo/data/'  # where `make demo` runs data_prep
img_dir = 'data/sample/stage1_train/'
crop_size = (128, 128)
channels = 32

model = dict(
    backbone=dict(depth=18, base_channels=16, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=64),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels, num_convs=1)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=200), rcnn=dict(sampler=dict(num=64))),
    # An untrained model scores low: keep some output to carry through the chain.
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200), rcnn=dict(score_thr=0.05, max_per_img=50)))

train_pipeline = [
    dict(type='LoadNucleusImage'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomZoom', scale_range=(0.7, 1.4), aspect_range=(0.8, 1.25), pre_crop=crop_size),
    dict(type='InstanceSafeRandomCrop', crop_size=crop_size, min_area=4, max_instances=64),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomRot90', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(ann_file=f'{ann_dir}train_fold0.json', data_prefix=dict(img=img_dir),
                 pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(ann_file=f'{ann_dir}val_fold0.json', data_prefix=dict(img=img_dir)))
test_dataloader = val_dataloader

train_cfg = dict(max_iters=6, val_interval=6)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=6)]
optim_wrapper = dict(optimizer=dict(lr=0.01))
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=6, max_keep_ckpts=1))
# One seed: two runs give the same weights bit for bit, and `--resume` continues
# as if uninterrupted (the base's IterationSeedHook). The CPU kernels are
# deterministic already; deterministic=True (torch.use_deterministic_algorithms)
# changes nothing on a CPU and, on a GPU, fails in cuBLAS unless
# CUBLAS_WORKSPACE_CONFIG=:4096:8 is set.
randomness = dict(seed=0, deterministic=False)

tta_views = [dict(), dict(flip='horizontal'), dict(rot90=1), dict(scale=1.25),
             dict(shift=(10, 10, 10))]
tta_model = dict(views=tta_views)
load_from = None
