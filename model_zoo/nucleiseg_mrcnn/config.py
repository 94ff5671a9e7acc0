# The shipped default model: the recipe that trained it. Its post-processing
# settings (tuned on fold 0, checked on fold 1) are in thresholds.json beside this file,
# applied when the model is loaded; MODEL_CARD.md has the training command and scores.
_base_ = ['../../configs/dsb_mrcnn_cpu_mnv2.py']
# Trained on 2026-11-23, before the recipe's cheaper training RoIs of 2026-12-03: these
# are the training settings that made these weights (inference does not read them).
model = dict(
    roi_head=dict(bbox_roi_extractor=dict(roi_layer=dict(sampling_ratio=0))),
    train_cfg=dict(rpn_proposal=dict(nms_pre=2000, max_per_img=1000),
                   rcnn=dict(sampler=dict(num=256))))
