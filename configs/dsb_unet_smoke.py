# A tiny contour-aware U-Net that trains a few iterations on the bundled sample
# in seconds (the U-Net twin of dsb_mrcnn_smoke.py); its scores mean nothing.
_base_ = './dsb_unet_cpu.py'

ann_dir = 'work_dirs/demo/data/'  # where `make demo` runs data_prep
img_dir = 'data/sample/stage1_train/'
crop_size = (64, 64)

model = dict(
    encoder=dict(_delete_=True, type='PlainUNetEncoder', channels=(8, 16, 32)),
    encoder_channels=(8, 16, 32),
    decoder_channels=(16, 8, 8),
    stem_channels=8,
    norm_cfg=dict(type='GN', num_groups=4, requires_grad=True))

train_pipeline = [
    dict(type='LoadNucleusImage', mode='grey_dark'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='InstanceSafeRandomCrop', crop_size=crop_size, min_area=4, max_instances=64),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='UNetTargets'),
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
randomness = dict(seed=0, deterministic=False)
tta_model = dict(views=[dict(), dict(flip='horizontal'), dict(rot90=1)])
