# Runtime shared by the repo's configs: MMDetection's default runtime, iteration
# based, with the project's modules imported and a per-step seed hook.
_base_ = 'mmdet::_base_/default_runtime.py'

custom_imports = dict(imports=['custom_modules'], allow_failed_imports=False)

default_hooks = dict(
    # Iteration-based: validation scores are logged at their iteration, not at "epoch 0".
    logger=dict(interval=50, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, max_keep_ckpts=3, save_best='dsb/score', rule='greater'),
    # torch's RNG seeded per step: `--resume` then continues as if uninterrupted
    # (README, "Reproducible runs"); set randomness.seed for a repeatable run.
    iter_seed=dict(type='IterationSeedHook'))
randomness = dict(seed=None)  # mmengine's default, a new seed per run; a number repeats runs
log_processor = dict(by_epoch=False)
# Several processes (DDP): frozen stages are frozen when training starts, after DDP
# has wrapped the model, and MobileNetV2's last 1x1 conv feeds no output
# (out_indices stop before it), so some parameters never get a gradient.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
