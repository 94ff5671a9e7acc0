#!/usr/bin/env bash
# Fill .whl/ (the wheels a lent GPU machine lacks, for its Python 3.12) and .gpu_images/
# (20 fold-0 images) for bench/gpu/run_gpu_bench.sh; both git-ignored through
# .git/info/exclude, so the device tool's call must name them in `carry`. Idempotent:
# files already there are kept. Prints what the bundle weighs.
#   bash bench/gpu/prepare.sh          (or: make gpu-bundle)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
exclude="$(git rev-parse --git-common-dir)/info/exclude"
mkdir -p "$(dirname "$exclude")" .whl .gpu_images
for path in /.whl/ /.gpu_images/; do
    grep -qxF "$path" "$exclude" 2>/dev/null || echo "$path" >> "$exclude"
done
# Pure Python: the OpenMMLab stack (mmcv-lite 2.1.0 is mmcv 2.1.0's Python files without
# the compiled ops: bench/gpu/mmcv_ext_torch.py stands in for those) and what it imports
# that the machine lacks; setuptools<81 for pkg_resources (mmengine resolves mmdet::
# configs with it). Compiled, for cp312 manylinux: pycocotools, shapely.
WHEELS=(mmengine==0.10.7 mmcv-lite==2.1.0 mmdet==3.3.0 addict==2.4.0 yapf==0.43.0
        platformdirs==4.14.8 termcolor==3.3.0 terminaltables==3.1.10 setuptools==80.10.2
        pycocotools==2.0.11 shapely==2.2.0)
missing=()
for spec in "${WHEELS[@]}"; do
    name=${spec%%==*}; version=${spec##*==}
    ls .whl/"${name//-/_}"-"$version"-*.whl >/dev/null 2>&1 || missing+=("$spec")
done
if ((${#missing[@]})); then
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d .whl "${missing[@]}"
fi
PYTHONPATH=$PWD $PY bench/bench_gpu.py --prepare-images .gpu_images --count 20
echo "bundle: $(ls .whl | wc -l) wheels $(du -sh .whl | cut -f1), $(ls .gpu_images | wc -l)" \
     "images $(du -sh .gpu_images | cut -f1); total $(du -shc .whl .gpu_images | tail -1 | cut -f1)"
