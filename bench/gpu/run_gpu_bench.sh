#!/usr/bin/env bash
# On a lent GPU machine (Python 3.12 with CUDA torch, no registry): install the carried
# wheels (.whl/, from bench/gpu/prepare.sh) into $SITE, put the pure-PyTorch stand-in for
# mmcv's compiled ops in as mmcv/_ext.py, check that the stack imports, then time the
# shipped models on .gpu_images/ (bench/bench_gpu.py). Files land in $OUT (the device
# tool's folder; else work_dirs/gpu_bench): gpu_bench.txt, gpu_bench.json, run.log.
#   bash bench/gpu/run_gpu_bench.sh [bench_gpu.py options, e.g. --device cpu --limit 2]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-work_dirs/gpu_bench}
SITE=${SITE:-/tmp/site}
PY=${PY:-python3}
WHL=${WHL:-.whl}  # another folder of wheels: to try the script on another Python
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
start=$SECONDS
ls "$WHL"/*.whl >/dev/null 2>&1 || { echo "run_gpu_bench.sh: $WHL/ holds no wheels (run bench/gpu/prepare.sh here and carry .whl)"; exit 2; }
ls .gpu_images/*.png >/dev/null 2>&1 || { echo "run_gpu_bench.sh: .gpu_images/ holds no images (run bench/gpu/prepare.sh here and carry .gpu_images)"; exit 2; }
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHL"/*.whl
cp bench/gpu/mmcv_ext_torch.py "$SITE/mmcv/_ext.py"
export PYTHONPATH=$PWD:$SITE
echo "installed in $((SECONDS - start)) s"
$PY - "${DEVICE:-cuda}" <<'PYEOF'
import sys
import torch, numpy, mmcv, mmcv.ops, mmengine, mmdet, custom_modules  # noqa: F401
import mmcv._ext
device = sys.argv[1] if torch.cuda.is_available() or sys.argv[1] == 'cpu' else 'cpu'
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__,
      'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'mmengine', mmengine.__version__)
print('mmcv._ext:', mmcv._ext.__file__)
boxes = torch.tensor([[0., 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], device=device)
keep = mmcv.ops.nms(boxes, torch.tensor([.9, .8, .7], device=device), 0.5)[1]
feat = torch.arange(16., device=device).reshape(1, 1, 4, 4)
pooled = mmcv.ops.roi_align(feat, torch.tensor([[0., 0, 0, 4, 4]], device=device), (2, 2))
print('on', device, ': nms keeps', keep.tolist(), '(expect [0, 2]); roi_align',
      pooled.flatten().tolist(), '(expect [2.5, 4.5, 10.5, 12.5])')
PYEOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
$PY bench/bench_gpu.py --out "$OUT" "$@"
echo "whole run: $((SECONDS - start)) s"
