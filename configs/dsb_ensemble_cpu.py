# Mask R-CNN + contour-aware U-Net, both CPU recipes trained without fold 0,
# merged nucleus by nucleus (README, "Ensembles"). The two fail differently:
# U-Nets split touching nuclei, Mask R-CNN finds faint ones.
#   python tools/test.py configs/dsb_ensemble_cpu.py [--tta]
# merge='split' keeps Mask R-CNN's nuclei and splits them along the U-Net's;
# merge='probabilities' averages U-Nets of one family (same heads).
_base_ = ['./_base_/runtime.py', './_base_/dsb_dataset.py', './_base_/tta.py']

model = dict(
    type='NucleusEnsemble',
    members=[
        dict(config='configs/dsb_mrcnn_cpu_mnv2.py', checkpoint='work_dirs/mnv2_fold0/iter_3400.pth',
             weight=1.0),
        dict(config='configs/dsb_unet_cpu.py', checkpoint='work_dirs/unet_fold0/iter_1600.pth',
             weight=1.0),
    ],
    merge='consensus',
    # Two members: a pixel needs half the weight, so either member's nucleus
    # can stand; where both see it, their matched pixels vote together.
    match_iou=0.5, vote_thr=0.5,
    min_area=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
