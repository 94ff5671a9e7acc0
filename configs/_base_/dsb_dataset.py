# DSB2018 through data_prep's COCO JSONs: group-aware fold `fold` validates,
# the other folds train. Leaf configs set `train_pipeline` / `test_pipeline`.
ann_dir = 'data/generated/dsb/'  # OUT_DIR of data_prep/prepare_dsb.py
img_dir = '../shared/dsb2018/stage1_train/'  # its SRC: file_name is relative to it
fold = 0
crop_size = (256, 256)

train_pipeline = [
    dict(type='LoadNucleusImage', mode='grey_dark'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    # Zoom in/out with aspect changes before the crop (the 3rd-place solution's
    # scale augmentation); pre_crop keeps memory bounded on large images.
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
train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    # Image kinds drawn equally often (the solution's second training step).
    sampler=dict(type='StratumBalancedSampler'),
    dataset=dict(type='NucleusDataset', data_root='', ann_file=f'{ann_dir}train_fold{fold}.json',
                 data_prefix=dict(img=img_dir), pipeline=train_pipeline,
                 # MMDetection's COCO default: images without nuclei or under 32 px skipped.
                 filter_cfg=dict(filter_empty_gt=True, min_size=32)))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='NucleusDataset', data_root='', ann_file=f'{ann_dir}val_fold{fold}.json',
                 data_prefix=dict(img=img_dir), pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='DSBMetric')
test_evaluator = dict(type='DSBMetric', segm_ap=True)
