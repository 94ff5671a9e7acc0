# The CPU U-Net recipe (dsb_unet_cpu.py) with appearance augmentations that
# mimic other microscopes and stains (custom_modules/data/appearance.py, issue 29).
# Not a shipped recipe: a measured arm for the type-held-out split
# (data_prep/image_types.csv, prepare_dsb.py --hold-out-types). The image is
# loaded in colour so the stain and colour jitter act before the grey_dark
# conversion the recipe feeds the model (NucleusInputMode); test images are
# converted at load time as before.
_base_ = ['./dsb_unet_cpu.py']

appearance = [
    dict(type='RandomHEDJitter', scale_range=(0.9, 1.1), shift_range=(-0.05, 0.05), prob=0.5),
    dict(type='RandomHSVJitter', hue_range=(-15.0, 15.0), saturation_range=(0.7, 1.3),
         value_range=(0.8, 1.2), prob=0.5),
    dict(type='RandomGreyColour', absorb_range=(0.3, 1.0), prob=0.2),
    dict(type='RandomInvert', prob=0.1),
    dict(type='RandomGammaContrast', gamma_range=(0.6, 1.6), contrast_range=(0.7, 1.3), prob=0.5),
    dict(type='RandomDefocus', sigma_range=(0.5, 2.0), prob=0.3),
    dict(type='RandomDownUp', scale_range=(0.35, 0.8), prob=0.3),
    dict(type='RandomPoissonGaussianNoise', peak_range=(20.0, 500.0), sigma_range=(0.0, 8.0), prob=0.3),
    dict(type='RandomJPEG', quality_range=(30, 90), prob=0.3),
]
train_pipeline = [
    dict(type='LoadNucleusImage', mode='rgb'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomZoom', scale_range=(0.6, 1.6), aspect_range=(0.8, 1.25), pre_crop={{_base_.crop_size}}),
    dict(type='InstanceSafeRandomCrop', crop_size={{_base_.crop_size}}, min_area=4, max_instances=256),
    *appearance,  # on the crop: cheaper than on the whole image
    dict(type='NucleusInputMode', mode='grey_dark'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRot90', prob=0.75),
    dict(type='RandomFreeRotate', max_angle=30.0, prob=0.3),
    dict(type='RandomChannelShift', max_shift=15.0, prob=0.3),
    dict(type='UNetTargets', contour_width=2, boundary_width=2, marker_margin=2, gap_width=3),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
