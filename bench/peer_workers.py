"""One tool's timings for bench/bench_peer.py, in a process of its own.

    python bench/peer_workers.py TOOL DATA.npz OUT.json [--reps N] [--threads T]
        [--model NAME] [--sam-mode tile|full]

TOOL: ``ours`` (the shipped model through the repo's own API), ``cp3`` (cellpose
3.x ``nuclei`` U-Net, random weights) or ``cp4`` (Cellpose-SAM, random weights);
the Cellpose ones need their folder from bench/peer_env.sh on PYTHONPATH (the
driver sets it). DATA.npz holds ``image_<size>`` and ``labels_<size>`` arrays.
OUT.json gets one record per size: ``net``, ``post``, ``whole`` (seconds, the
median of the reps), ``maxrss_mib`` (the process's maximum so far; sizes run
smallest first), ``nuclei`` and notes. Nothing here is imported by the project.
"""
import argparse
import importlib
import json
import pkgutil
import resource
import statistics
import time

import numpy as np


def timed(fn, reps):
    """The median wall time of ``reps`` calls of ``fn`` and its last result."""
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def find_attr(name, package='custom_modules', first=('custom_modules.inference.inferencer', )):
    """``name`` from the project package, wherever a restructure put it."""
    for mod in first:
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            pass
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, package + '.'):
        mod = importlib.import_module(info.name)
        if hasattr(mod, name):
            return getattr(mod, name)
    raise ImportError(f'{package}: no {name} in any module')


def ours(data, sizes, args):
    """The shipped model: detector untiled (net) and the inferencer's label-map path (whole)."""
    import torch
    inferencer_cls = find_attr('NucleusInferencer')
    to_model_input = find_attr('to_model_input')
    inf = inferencer_cls(args.model, tta=False, diameter=None)
    inner = inf.predictor
    while hasattr(inner, 'module'):  # tiling / rescaling wrappers
        inner = inner.module
    note = (f'{args.model}: trained weights, TTA off, --diameter none; net = detector on the '
            'whole image (backbone, FPN, RPN, RoI heads, mask pasting); whole = the '
            "inferencer's label-map path (config tiling: 512 px tiles above 1400 px)")
    out = []
    inner.predict_instances(to_model_input(data[f'image_{sizes[0]}'][:64, :64], inf.input_mode))
    for size in sizes:  # (above: an untimed warm-up call)
        img = to_model_input(data[f'image_{size}'], inf.input_mode)
        with torch.no_grad():
            net, _ = timed(lambda: inner.predict_instances(img), args.reps)
            whole, pred = timed(lambda: inf.predictor.predict_label_map(img), args.reps)
        out.append(dict(size=size, net=net, post=None, whole=whole, maxrss_mib=maxrss_mib(),
                        nuclei=int(len(np.unique(pred.label_map)) - 1), note=note))
    return out


def _torchvision_without_c():
    """Let torchvision's Python code import without its C++ ops.

    The registry's torchvision wheel is built for CUDA torch; its ``_C`` does not load
    with the CPU torch of .venv, and torchvision then fails on two unguarded fake-op
    registrations (``nms``, ``qnms``). Defining those two schemas is enough: Cellpose
    and segment-anything use only torchvision's pure-Python transforms here.
    """
    import torch
    try:
        import torchvision  # noqa: F401
        return
    except RuntimeError:
        import sys
        for key in [k for k in sys.modules if k.startswith('torchvision')]:
            del sys.modules[key]
    lib = torch.library.Library('torchvision', 'DEF')
    for op in ('nms', 'qnms'):
        lib.define(f'{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
    _torchvision_without_c.lib = lib  # keep the definitions alive
    import torchvision  # noqa: F401,F811


def real_flows(dynamics, labels):
    """Flows and cell probability as a trained network would give them for ``labels``.

    Made by Cellpose's own ``masks_to_flows_gpu`` (on the CPU), scaled like the
    network's outputs (flows x5, logits +-5), so its mask step follows real flows.
    """
    import torch
    mu = dynamics.masks_to_flows_gpu(labels.astype(np.int32), device=torch.device('cpu'))[0]
    return (5 * mu).astype(np.float32), np.where(labels > 0, 5.0, -5.0).astype(np.float32)


def post_masks(dynamics, labels, reps):
    """Cellpose's mask step (flow following, flow check) on flows from real labels."""
    import torch
    dp, cellprob = real_flows(dynamics, labels)
    return timed(lambda: dynamics.resize_and_compute_masks(
        dp, cellprob, niter=200, cellprob_threshold=0.0, flow_threshold=0.4, min_size=15,
        max_size_fraction=0.4, resize=None, device=torch.device('cpu')), reps)


def cp3(data, sizes, args):
    """cellpose 3.x ``nuclei``: the CPnet U-Net (nbase 2-32-64-128-256), random weights."""
    from cellpose import dynamics, models
    from cellpose.version import version
    model = models.CellposeModel(gpu=False, pretrained_model=False, diam_mean=17., nchan=2)
    note = (f'cellpose {version} CPnet nuclei (random weights, diam_mean 17, no rescale), '
            '224 px tiles, batch 8, mkldnn; post on flows from the real labels')
    out = []
    model.eval(data[f'image_{sizes[0]}'][:64, :64], channels=[0, 0], compute_masks=False)
    for size in sizes:  # (above: an untimed warm-up call)
        img = data[f'image_{size}']
        net, _ = timed(lambda: model.eval(img, channels=[0, 0], diameter=None,
                                          compute_masks=False), args.reps)
        post, masks = post_masks(dynamics, data[f'labels_{size}'], args.reps)
        out.append(dict(size=size, net=net, post=post, whole=net + post, maxrss_mib=maxrss_mib(),
                        nuclei=int(masks.max()), note=note))
    return out


def sam_tiles(transforms, shape, bsize=256, overlap=0.1):
    """How many ``bsize`` tiles Cellpose 4's ``run_net`` cuts an image of ``shape`` into."""
    ypad1, ypad2, xpad1, xpad2 = transforms.get_pad_yx(*shape, min_size=(bsize, bsize))
    padded = np.zeros((1, shape[0] + ypad1 + ypad2, shape[1] + xpad1 + xpad2), np.float32)
    tiles = transforms.make_tiles(padded, bsize=bsize, augment=False, tile_overlap=overlap)[0]
    return int(np.prod(tiles.shape[:2]))


def cp4(data, sizes, args):
    """Cellpose-SAM (4.x default): the CPSAM ViT-L, random weights, float32."""
    import torch
    _torchvision_without_c()
    from cellpose import dynamics, models, transforms, vit
    from cellpose.version import version
    model = models.CellposeModel.__new__(models.CellposeModel)  # __init__ loads weights
    model.device, model.gpu, model.backbone = torch.device('cpu'), False, 'sam_vitl'
    model.pretrained_model = None
    model.net = vit.CPSAM(dtype=torch.float32).eval()
    note = (f'cellpose {version} CPSAM ViT-L (random weights, float32: the default bfloat16 '
            'weights not timed; no warm-up call), 256 px tiles, overlap 0.1, no rescale '
            '(diameter None); ')
    note += ('net = one 256 px tile forward x the tile count (estimate)' if args.sam_mode == 'tile'
             else 'net = eval(compute_masks=False)')
    out, tile = [], None
    for size in sizes:
        img = data[f'image_{size}']
        ntiles = sam_tiles(transforms, img.shape[:2])
        if args.sam_mode == 'full':
            net, _ = timed(lambda: model.eval(img, compute_masks=False), args.reps)
        else:
            if tile is None:
                x = torch.randn(1, 3, 256, 256)
                with torch.no_grad():
                    tile, _ = timed(lambda: model.net(x), args.reps)
            net = tile * ntiles
        post, masks = post_masks(dynamics, data[f'labels_{size}'], args.reps)
        out.append(dict(size=size, net=net, post=post, whole=net + post, maxrss_mib=maxrss_mib(),
                        nuclei=int(masks.max()), tiles=ntiles, tile_s=tile,
                        estimate=args.sam_mode == 'tile' and ntiles > 1, note=note))
    return out


TOOLS = dict(ours=ours, cp3=cp3, cp4=cp4)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('tool', choices=sorted(TOOLS))
    parser.add_argument('data')
    parser.add_argument('out')
    parser.add_argument('--reps', type=int, default=1)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--model', default='nucleiseg_mrcnn')
    parser.add_argument('--sam-mode', choices=('tile', 'full'), default='tile')
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    with np.load(args.data) as npz:
        data = dict(npz)
    sizes = sorted({k.split('_', 1)[1] for k in data if k.startswith('image_')},
                   key=lambda s: data[f'image_{s}'].size)
    records = TOOLS[args.tool](data, sizes, args)
    for rec in records:
        rec.update(tool=args.tool, threads=torch.get_num_threads())
    with open(args.out, 'w') as f:
        json.dump(records, f)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
