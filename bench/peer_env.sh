#!/usr/bin/env bash
# Cellpose environments for bench/bench_peer.py (issue 28, "a peer, side by side").
#
#   bash bench/peer_env.sh [DEST]        (or `make peer-env`; DEST: work_dirs/peer_env)
#
# Installs, with pip --target and --no-deps at pinned versions, into two folders that
# the benchmark puts on PYTHONPATH in front of the project's .venv:
#   DEST/cp4: cellpose 4.2.1.1 (Cellpose-SAM), torchvision 0.28.0 (built for torch
#             2.13.0, the .venv's; cellpose 4 and segment-anything import it),
#             segment-anything 1.0, fastremap, fill-voids, natsort
#   DEST/cp3: cellpose 3.1.1.3 (the `nuclei` U-Net), numba 0.62.1 + llvmlite 0.45.1
#             (its flow following), fastremap, fill-voids, natsort
# Two folders because both are the package `cellpose`. --no-deps keeps torch, numpy,
# scipy, opencv, tifffile, tqdm and roifile the .venv's own: nothing under .venv is
# installed, upgraded or removed, so the project's pins stay as they are (pip would
# otherwise pull a CUDA torch from the registry). imagecodecs and the GUI extras are
# left out: nothing the benchmark calls imports them. No weights are downloaded, then
# or later: the benchmark builds the networks with random weights.
set -euo pipefail
DEST=${1:-work_dirs/peer_env}
PY=${PY:-.venv/bin/python}
COMMON=(fastremap==1.21.0 fill-voids==2.1.2 natsort==8.4.0)
CP4=(cellpose==4.2.1.1 torchvision==0.28.0 segment-anything==1.0 "${COMMON[@]}")
CP3=(cellpose==3.1.1.3 numba==0.62.1 llvmlite==0.45.1 "${COMMON[@]}")

install() {  # install DIR PACKAGES...: all or nothing (a new folder, then renamed)
    local dir=$1; shift
    rm -rf "$dir.tmp"
    "$PY" -m pip install -q --disable-pip-version-check --no-deps --target "$dir.tmp" "$@"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    printf '%s\n' "$@" > "$dir/PEER_ENV"
}

mkdir -p "$DEST"
install "$DEST/cp4" "${CP4[@]}"
install "$DEST/cp3" "${CP3[@]}"
for v in cp4 cp3; do
    PYTHONPATH="$DEST/$v" "$PY" -c \
        "from cellpose.version import version; import torch; print('$DEST/$v: cellpose', version, 'torch', torch.__version__)"
done
