# The recipe that trained these weights; thresholds.json (beside this file) sets
# the post-processing settings over it when the model is loaded.
_base_ = ['../../configs/dsb_unet_cpu.py']
