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
    # Two members, vote_thr 1.0: a nucleus and its pixels need both. On fold 0
    # it beat vote_thr 0.5 (either member's nucleus stands: 0.5105) and the
    # split merge (0.5273) with 0.5291, still 0.0015 under Mask R-CNN alone
    # (BENCHMARKS.md, bench/bench_ensemble.py).
    match_iou=0.5, vote_thr=1.0,
    min_area=10)
# Trained members only: nothing to train here.
train_dataloader = None
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
