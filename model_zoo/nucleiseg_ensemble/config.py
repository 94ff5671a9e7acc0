# The Mask R-CNN + U-Net ensemble of configs/dsb_ensemble_cpu.py with the shipped members
# (each its folder's config, thresholds.json and weights): nothing of its own to load.
_base_ = ['../../configs/dsb_ensemble_cpu.py']
model = dict(members=[dict(model='nucleiseg_mrcnn', weight=0.4),
                      dict(model='nucleiseg_unet', weight=0.6)])
