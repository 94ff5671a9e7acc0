# The 2-hour CPU budget: AdamW, linear warm-up then cosine decay, validation
# and a checkpoint every val_interval (a crashed run resumes from the last).
# The loop, the scheduler and the checkpoints read max_iters, val_interval and
# warmup_iters as fields (filled in at load time, _base_/dsb_dataset.py), so a
# leaf or `--cfg-options max_iters=N` changes only those keys.
_base_ = './runtime.py'  # one base per key: the checkpoint interval below needs the hooks

max_iters = 3400  # 97.5 min on 2 cores (model_zoo/nucleiseg_mrcnn/MODEL_CARD.md)
val_interval = 1700  # half-way and at the end
warmup_iters = 300  # linear warm-up from 1 % of the rate: AdamW's first steps are large
# ResumingIterBasedTrainLoop: MMEngine's loop; --resume skips the trained batches without
# loading them (custom_modules/engine/loops.py).
train_cfg = dict(type='ResumingIterBasedTrainLoop', max_iters='{max_iters}',
                 val_interval='{val_interval}')
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# fused=True: AdamW in one kernel over all tensors, foreach=True: the clipping's norms
# likewise, in place of torch's CPU default of one tensor at a time; the same arithmetic
# (parameters within 2e-7 after 12 steps) in 0.38x the time of the optimizer step, which
# is ~2 % of a training step: 1.01-1.02x per step (BENCHMARKS.md "Where an iteration goes").
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, fused=True),
                     # the solution's GRADIENT_CLIP_NORM
                     clip_grad=dict(max_norm=5.0, norm_type=2, foreach=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end='{warmup_iters}'),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin='{warmup_iters}',
         end='{max_iters}'),
]
default_hooks = dict(checkpoint=dict(interval='{val_interval}'))
auto_scale_lr = dict(enable=False, base_batch_size=2)  # the lr above is for 2 crops per step
