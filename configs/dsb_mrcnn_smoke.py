# The shipped recipe at smoke scale (_base_/smoke.py) with narrow layers: a
# MobileNetV2 at a quarter width, untrained (the ImageNet weights fit the full
# width), and small heads. `make demo` and most tool tests run it.
_base_ = './_base_/smoke.py'

channels = 32  # FPN and head width (the recipe's 128)

model = dict(
    # widen_factor 0.25: 8, 8, 24, 80 channels at the recipe's four outputs.
    backbone=dict(widen_factor=0.25, init_cfg=None),
    neck=dict(in_channels=[8, 8, 24, 80], out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=64),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels, num_convs=1)),
    # 128 crops hold few nuclei: fewer proposals and sampled RoIs.
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=200), rcnn=dict(sampler=dict(num=64))),
    # An untrained model scores low and its mask logits hover about 0.5: keep some
    # output to carry through the chain (at 0.5 the 6-iteration model finds none).
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200),
                  rcnn=dict(score_thr=0.05, max_per_img=50, mask_thr_binary=0.45)))
