# The CPU U-Net recipe (dsb_unet_cpu.py) trained over a wider range of nucleus
# sizes: zoom 0.5-2x in place of 0.6-1.6x (DSB2018's nuclei, 8-46 px across for
# 90 % of them, seen at 4-92 px). Not a shipped recipe: a measured arm for the
# type-held-out split (issue 29's "a wider scale range").
_base_ = './dsb_unet_cpu.py'

zoom_range = (0.5, 2.0)
