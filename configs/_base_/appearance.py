# Appearance augmentations that mimic other microscopes and stains
# (custom_modules/data/appearance.py, issue 29), for a recipe of
# _base_/dsb_dataset.py. A leaf inherits this piece beside its recipe and sets
#     appearance = '{appearance_augment}'
#     train_load = '{colour_load}'
# Training images load in colour so the stain and colour jitter act before the
# conversion to the recipe's input mode (NucleusInputMode, last); test images
# are converted at load time as before.
colour_load = [
    dict(type='LoadNucleusImage', mode='rgb'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
]
appearance_augment = [
    # Haematoxylin/eosin/DAB optical densities scaled and shifted (stain batches).
    dict(type='RandomHEDJitter', scale_range=(0.9, 1.1), shift_range=(-0.05, 0.05), prob=0.5),
    dict(type='RandomHSVJitter', hue_range=(-15.0, 15.0), saturation_range=(0.7, 1.3),
         value_range=(0.8, 1.2), prob=0.5),
    # A grey image given a stain's colours, or a colour image made grey.
    dict(type='RandomGreyColour', absorb_range=(0.3, 1.0), prob=0.2),
    dict(type='RandomInvert', prob=0.1),
    dict(type='RandomGammaContrast', gamma_range=(0.6, 1.6), contrast_range=(0.7, 1.3), prob=0.5),
    dict(type='RandomDefocus', sigma_range=(0.5, 2.0), prob=0.3),  # Gaussian blur sigma, px
    # Shrunk and enlarged back: a lower magnification, and the look of an image
    # that --diameter auto enlarged.
    dict(type='RandomDownUp', scale_range=(0.35, 0.8), prob=0.3),
    dict(type='RandomPoissonGaussianNoise', peak_range=(20.0, 500.0), sigma_range=(0.0, 8.0),
         prob=0.3),  # photons at the brightest pixel; read noise in grey levels
    dict(type='RandomJPEG', quality_range=(30, 90), prob=0.3),
    dict(type='NucleusInputMode', mode='{input_mode}'),
]
