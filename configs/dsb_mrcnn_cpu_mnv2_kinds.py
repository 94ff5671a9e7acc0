# The MobileNetV2 CPU recipe with the image kind as the class (the role the cell
# type played in the Sartorius solution): colour histology, grey brightfield,
# grey fluorescence, each with its own score and mask thresholds
# (tools/tune_thresholds.py finds them). Same budget as the one-class model.
# Data: python data_prep/prepare_dsb.py ../shared/dsb2018/stage1_train data/generated/dsb_kinds \
#           --groups ../shared/dsb2018/mosaic_groups.csv --class-by-kind
_base_ = './dsb_mrcnn_cpu_mnv2.py'

num_classes = 3  # data_prep's IMAGE_KINDS, ids 1..3 in that order
ann_dir = 'data/generated/dsb_kinds/'  # the file names follow (fields of _base_/dsb_dataset.py)

# The model is not a field (Config.fromfile(...).model builds as it is): both heads take it.
model = dict(roi_head=dict(bbox_head=dict(num_classes=num_classes),
                           mask_head=dict(num_classes=num_classes)))
