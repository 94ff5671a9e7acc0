# The 2018 Data Science Bowl 3rd-place model (one Matterport Mask R-CNN R101) in
# MMDetection terms. Comments name the solution's setting each value comes from
# (Matterport config names in capitals). Leaf configs add data, schedule, TTA.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

num_classes = 1  # NUM_CLASSES = 1 + background: 'nucleus'

model = dict(
    type='NucleusMaskRCNN',
    # Overlap removal always; dilation (radius in px) is the cheap TTA stand-in.
    postprocess=dict(min_area=10, dilation_radius=0),
    data_preprocessor=dict(
        # MEAN_PIXEL of the solution. Matterport divides by nothing; we keep the
        # std of the COCO checkpoint we start from, which expects that scale.
        mean=[123.7, 116.8, 103.9],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=64),  # inference on the whole image padded to a multiple of 64
    # BACKBONE = "resnet101"
    backbone=dict(depth=101, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')),
    rpn_head=dict(
        # MMDetection's RPNHead, with test_cfg.rpn.score_thr (an objectness floor before
        # the proposals' NMS; absent here, as in the solution, which has none).
        type='NucleusRPNHead',
        # RPN_ANCHOR_SCALES (8, 16, 32, 64, 128) on BACKBONE_STRIDES (4..64):
        # base size = stride x 2, one size per level; RPN_ANCHOR_RATIOS.
        anchor_generator=dict(scales=[2], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes),
        # USE_MINI_MASK (56x56 ground-truth masks) has no MMDetection
        # equivalent: mask targets are cut from the full masks per RoI (28x28).
        mask_head=dict(num_classes=num_classes)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=256)),  # RPN_TRAIN_ANCHORS_PER_IMAGE
        rpn_proposal=dict(nms_pre=4000, max_per_img=2000,  # POST_NMS_ROIS_TRAINING
                          nms=dict(iou_threshold=0.7)),  # RPN_NMS_THRESHOLD
        # TRAIN_ROIS_PER_IMAGE = 600, ROI_POSITIVE_RATIO = 0.33
        rcnn=dict(sampler=dict(num=600, pos_fraction=0.33))),
    test_cfg=dict(
        rpn=dict(nms_pre=4000, max_per_img=2000,  # POST_NMS_ROIS_INFERENCE: enough for 512
                 nms=dict(iou_threshold=0.7)),
        rcnn=dict(score_thr=0.9,  # DETECTION_MIN_CONFIDENCE
                  nms=dict(iou_threshold=0.2),  # DETECTION_NMS_THRESHOLD
                  max_per_img=512,  # DETECTION_MAX_INSTANCES
                  mask_thr_binary=0.5)))
