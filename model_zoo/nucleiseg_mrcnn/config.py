# The shipped default model: the recipe that trained it, unchanged. Its post-processing
# settings (tuned on fold 0, checked on fold 1) are in thresholds.json beside this file,
# applied when the model is loaded; MODEL_CARD.md has the training command and scores.
_base_ = ['../../configs/dsb_mrcnn_cpu_mnv2.py']
