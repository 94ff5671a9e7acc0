# DSB2018 through data_prep's COCO JSONs: group-aware fold `fold` validates, the
# other folds train; pipelines in pieces, `load + augment + pack`.
#
# Fields, not computed values: strings such as '{ann_dir}train_fold{fold}.json'
# (plain strings, not f-strings) name top-level keys. load_config
# (load_config of custom_modules/inference/model_zoo.py, which every tool uses) fills them
# in after --cfg-options, so a leaf or an override sets one key and everything
# that follows from it moves: `--cfg-options data_root=/elsewhere/` moves every
# data path, `fold=1` every file name. A field that is a whole string takes the
# key's value (a number, a tuple); a whole-string field in a list that names a
# list is spliced in: ['{load}', '{augment}', '{pack}'] is the three pieces
# joined. With Config.fromfile, call fill_fields(cfg) after merge_from_dict.
data_root = ''  # prefix of ann_dir and img_dir ('': the folder the tools run in, the repo root)
ann_dir = 'data/generated/dsb/'  # OUT_DIR of data_prep/prepare_dsb.py
img_dir = '../shared/dsb2018/stage1_train/'  # its SRC: the JSONs' file_name is relative to it
fold = 0  # data_prep's --fold: val_fold{fold}.json validates, train_fold{fold}.json trains
num_workers = 2  # one per core of the 2-core machine the CPU recipes were fitted to
persistent_workers = True  # False when num_workers is 0 (torch refuses the pair)

input_mode = 'grey_dark'  # luminance, bright backgrounds inverted: the image kinds look alike
crop_size = (256, 256)  # training crops (the solution's 512, halved for the CPU budget)
zoom_range = (0.6, 1.6)  # RandomZoom's scale factors (nuclei of 8-46 px seen at 5-74 px)
zoom_aspect = (0.8, 1.25)  # and its width/height stretch (round nuclei made oval)

load = [
    dict(type='LoadNucleusImage', mode='{input_mode}'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
]
# Appearance augmentations (stain, microscope) on the crop, before the flips: none in
# the shipped recipes; an arm sets `appearance` and `train_load` from _base_/appearance.py.
appearance = []
train_load = '{load}'  # training images load as test images do
augment = [
    # Zoom in/out with aspect changes before the crop (the 3rd-place solution's
    # scale augmentation); pre_crop keeps memory bounded on large images.
    dict(type='RandomZoom', scale_range='{zoom_range}', aspect_range='{zoom_aspect}',
         pre_crop='{crop_size}'),
    # MAX_GT_INSTANCES = 256 per crop; crops keep whole nuclei where they can.
    dict(type='InstanceSafeRandomCrop', crop_size='{crop_size}', min_area=4, max_instances=256),
    '{appearance}',  # on the crop: cheaper than on the whole image
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRot90', prob=0.75),
    dict(type='RandomFreeRotate', max_angle=30.0, prob=0.3),
    dict(type='RandomChannelShift', max_shift=15.0, prob=0.3),
]
pack = [dict(type='PackDetInputs')]
# The stratum (image kind x size) travels to the metric's per-kind scores.
test_pack = [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                   'scale_factor', 'stratum'))]
train_pipeline = ['{train_load}', '{augment}', '{pack}']
test_pipeline = ['{load}', '{test_pack}']

train_dataloader = dict(
    batch_size=2, num_workers='{num_workers}', persistent_workers='{persistent_workers}',
    # Image kinds drawn equally often (the solution's second training step).
    sampler=dict(type='StratumBalancedSampler'),
    dataset=dict(type='NucleusDataset', data_root='{data_root}',
                 ann_file='{ann_dir}train_fold{fold}.json', data_prefix=dict(img='{img_dir}'),
                 pipeline='{train_pipeline}',
                 # MMDetection's COCO default: images without nuclei or under 32 px skipped.
                 filter_cfg=dict(filter_empty_gt=True, min_size=32)))
val_dataloader = dict(
    batch_size=1, num_workers='{num_workers}', persistent_workers='{persistent_workers}',
    drop_last=False, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='NucleusDataset', data_root='{data_root}',
                 ann_file='{ann_dir}val_fold{fold}.json', data_prefix=dict(img='{img_dir}'),
                 pipeline='{test_pipeline}', test_mode=True))
# The held-out fold, its fields filled alike; a dict (not a field), so leaves merge into it.
test_dataloader = val_dataloader
val_evaluator = dict(type='DSBMetric')
test_evaluator = dict(type='DSBMetric', segm_ap=True)  # COCO mask AP beside the DSB score
