# The 2-hour CPU budget: AdamW, linear warm-up then cosine decay, validation
# and a checkpoint half-way and at the end (a crashed run resumes from either).
_base_ = './runtime.py'  # one base per key: the checkpoint interval below needs the hooks

max_iters = 3400
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters // 2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
                     clip_grad=dict(max_norm=5.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=300),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=300, end=max_iters),
]
default_hooks = dict(checkpoint=dict(interval=max_iters // 2))
auto_scale_lr = dict(enable=False, base_batch_size=2)
