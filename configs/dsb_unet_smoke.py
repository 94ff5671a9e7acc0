# A tiny contour-aware U-Net that trains a few iterations on the bundled sample
# in seconds (the U-Net twin of dsb_mrcnn_smoke.py); its scores mean nothing.
# The sizes below are _base_/smoke.py's, repeated: that file derives from the
# Mask R-CNN recipe, and mmengine refuses two bases that set one key.
_base_ = './dsb_unet_cpu.py'

ann_dir = 'work_dirs/demo/data/'  # where `make demo` runs data_prep
img_dir = 'data/sample/stage1_train/'
crop_size = (64, 64)  # the plain encoder's three levels need no more
num_workers = 0
persistent_workers = False
max_iters = 6
val_interval = 6
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(max_keep_ckpts=1))
randomness = dict(seed=0, deterministic=False)

model = dict(
    encoder=dict(_delete_=True, type='PlainUNetEncoder', channels=(8, 16, 32)),
    encoder_channels=(8, 16, 32),
    decoder_channels=(16, 8, 8),
    stem_channels=8,
    norm_cfg=dict(type='GN', num_groups=4, requires_grad=True))
tta_model = dict(views=[dict(), dict(flip='horizontal'), dict(rot90=1)])

# Training as before the recipe's pieces existed: the full augmentation, batches of 4
# and AdamW's warm-up made tools/test.py --tta --tile 48 fail on the tests' synthetic
# images (IndexError in the tiled TTA of the 2-iteration model; not investigated yet).
augment = [
    dict(type='InstanceSafeRandomCrop', crop_size='{crop_size}', min_area=4, max_instances=64),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
train_pipeline = ['{train_load}', '{augment}', dict(type='UNetTargets'), '{pack}']
train_dataloader = dict(batch_size=2)
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end='{max_iters}')]
