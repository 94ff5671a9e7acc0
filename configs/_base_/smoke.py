# The shipped recipe (dsb_mrcnn_cpu_mnv2.py, which model_zoo/nucleiseg_mrcnn was
# trained with: MobileNetV2 Mask R-CNN, 'grey_dark' input, stratum-balanced
# sampling, its augmentations, AdamW with warm-up and cosine) at smoke scale:
# a few iterations on the bundled sample in seconds on a CPU (like detectron2's
# instant_test), so `make demo` and the tests exercise the recipe itself. Only
# sizes change here; the model is shrunk by the leaf configs/dsb_mrcnn_smoke.py.
# Its scores mean nothing.
_base_ = '../dsb_mrcnn_cpu_mnv2.py'

ann_dir = 'work_dirs/demo/data/'  # where `make demo` runs data_prep
img_dir = 'data/sample/stage1_train/'  # the bundled sample (8 images)
crop_size = (128, 128)  # the sample's images are 256-360 px across
num_workers = 0  # loading in the main process: no worker start-up for 6 iterations
persistent_workers = False

max_iters = 6
val_interval = 6  # one validation, one checkpoint, at the end
warmup_iters = 1
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(max_keep_ckpts=1))
# One seed: two runs give the same weights bit for bit, and `--resume` continues
# as if uninterrupted (the base's IterationSeedHook). The CPU kernels are
# deterministic already; deterministic=True (torch.use_deterministic_algorithms)
# changes nothing on a CPU and, on a GPU, fails in cuBLAS unless
# CUBLAS_WORKSPACE_CONFIG=:4096:8 is set.
randomness = dict(seed=0, deterministic=False)

# Five of the recipe's 15 views: one of each kind (flip, turn, scale, shift). An
# untrained model's views rarely agree: a nucleus of one view stays (vote_thr 0.2;
# at the recipe's 0.5 the demo's 6-iteration model kept none), so output reaches
# the overlays and the submission.
tta_model = dict(views=[dict(), dict(flip='horizontal'), dict(rot90=1), dict(scale=1.25),
                        dict(shift=(10, 10, 10))], vote_thr=0.2)
