"""Our shipped model against Cellpose, side by side in one run (issue 28).

    python bench/bench_peer.py [--tools ours cp4 cp3] [--sizes 256x256 520x696 1024x1024]
        [--reps 1] [--threads 2] [--images DIR|synthetic] [--peer-env work_dirs/peer_env]
        [--sam-mode tile|full] [--model nucleiseg_mrcnn]

Sizes are HEIGHTxWIDTH (520x696: DSB2018's 696-wide frames). Images: real DSB2018
images of exactly that size from DIR (default /work/shared/dsb2018/stage1_train,
grey fluorescence first), else a real one tiled to the size, with its label map; or
synthetic discs (``--images synthetic``, or when DIR is absent). Each tool runs in a
process of its own (bench/peer_workers.py), the Cellpose ones with their folder from
bench/peer_env.sh on PYTHONPATH and the project's .venv torch and numpy, all with the
same torch thread count. Printed per size: net, post and whole seconds per image, the
ratio ours / peer (below 1: ours is faster) and each process's peak RSS.

Comparable: the same pixels, threads and torch; a random-weight network costs what
the trained one costs. Not comparable: Cellpose's networks have random weights, so
its mask step runs on flows made from the real label map by its own masks_to_flows
(the work a trained network's flows cause, not its output); ours runs its trained
weights. Cellpose-SAM's net in ``tile`` mode is one 256 px tile's forward times its
tile count (it always cuts 256 px tiles); its default bfloat16 weights are not timed
(float32 here). No tool rescales (Cellpose diameter None, ours --diameter none);
TTA and Cellpose's augment are off.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

DSB = '/work/shared/dsb2018/stage1_train'
TOOLS = ('ours', 'cp4', 'cp3')
PEERS = dict(cp4='Cellpose-SAM 4.x', cp3='Cellpose 3.x nuclei')
HERE = os.path.dirname(os.path.abspath(__file__))


def parse_size(text):
    """``'520x696'`` -> ``(520, 696)``; ``ValueError`` naming the text otherwise."""
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise ValueError(f'--sizes {text}: not HEIGHTxWIDTH (e.g. 520x696)') from None
    if not (16 <= h <= 8000 and 16 <= w <= 8000):
        raise ValueError(f'--sizes {text}: each side must be 16-8000 px')
    return h, w


def check_args(args):
    """One-line problems with the arguments, before any work (``None``: fine)."""
    try:
        args.shapes = [parse_size(s) for s in args.sizes]
    except ValueError as err:
        return str(err)
    if args.reps < 1 or args.threads < 1:
        return '--reps and --threads must be at least 1'
    if args.images != 'synthetic' and not os.path.isdir(args.images):
        return f'--images {args.images}: no such folder (or give "synthetic")'
    for tool in args.tools:
        env = os.path.join(args.peer_env, tool)
        if tool in PEERS and not os.path.isfile(os.path.join(env, 'PEER_ENV')):
            return f'{env}: no {PEERS[tool]} environment (bash bench/peer_env.sh makes it)'
    return None


def synthetic(shape, seed=0):
    """Grey discs on a dark background and their label map."""
    rng = np.random.default_rng(seed)
    h, w = shape
    labels = np.zeros(shape, np.int32)
    yy, xx = np.ogrid[:h, :w]
    for i in range(max(1, h * w // 1500)):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(5, 13)
        labels[((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (labels == 0)] = i + 1
    img = np.where(labels > 0, 160, 20) + rng.normal(0, 8, shape)
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2), labels


def truth_label_map(src, image_id, shape):
    """The repo's own reader (tools/score_labels.py), loaded by path."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'score_labels', os.path.join(HERE, '..', 'tools', 'score_labels.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.truth_label_map(src, image_id, shape)


def dsb_sizes(src):
    """``{(h, w): [image ids]}`` from the PNG headers."""
    from PIL import Image
    index = {}
    for path in sorted(glob.glob(os.path.join(src, '*', 'images', '*.png'))):
        with Image.open(path) as im:
            index.setdefault(im.size[::-1], []).append(os.path.basename(path)[:-4])
    return index


def pick(src, ids, tries=30):
    """The first grey fluorescence image (equal channels, dark background) among ``ids``."""
    import cv2
    for image_id in ids[:tries]:
        img = cv2.imread(os.path.join(src, image_id, 'images', image_id + '.png'))
        if (img[..., 0] == img[..., 2]).all() and np.median(img) < 60:
            return image_id, img
    return ids[0], cv2.imread(os.path.join(src, ids[0], 'images', ids[0] + '.png'))


def tile_to(arr, shape, labels=False):
    """``arr`` repeated to ``shape``; label maps get distinct labels per copy."""
    ry, rx = -(-shape[0] // arr.shape[0]), -(-shape[1] // arr.shape[1])
    rows = []
    for i in range(ry):
        row = []
        for j in range(rx):
            part = arr.copy()
            if labels:
                part[part > 0] += (i * rx + j) * int(arr.max())
            row.append(part)
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)[:shape[0], :shape[1]]


def make_images(args):
    """``{size: (image, labels, source)}``: images as cv2 reads them (H x W x 3 uint8)."""
    out, index, base = {}, None, None
    if args.images != 'synthetic':
        index = dsb_sizes(args.images)
    for size, shape in zip(args.sizes, args.shapes):
        if not index:
            out[size] = (*synthetic(shape), 'synthetic discs')
            continue
        if shape in index:
            image_id, img = pick(args.images, index[shape])
            labels = truth_label_map(args.images, image_id, img.shape[:2]).astype(np.int32)
            out[size] = (img, labels, f'DSB {image_id[:12]}')
            continue
        if base is None:  # a 696-wide frame (or the commonest size), tiled
            image_id, img = pick(args.images, index.get((520, 696)) or max(index.values(), key=len))
            base = (img, truth_label_map(args.images, image_id, img.shape[:2]).astype(np.int32),
                    image_id)
        out[size] = (tile_to(base[0], shape), tile_to(base[1], shape, True),
                     f'DSB {base[2][:12]} tiled')
    return out


def run_tool(tool, data_path, tmp, args):
    """One worker process; its records (or one record saying why it failed)."""
    out = os.path.join(tmp, f'{tool}.json')
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               NUMBA_NUM_THREADS=str(args.threads), CELLPOSE_LOCAL_MODELS_PATH=tmp)
    if tool in PEERS:
        path = os.path.abspath(os.path.join(args.peer_env, tool))
        env['PYTHONPATH'] = os.pathsep.join([path] + [p for p in [env.get('PYTHONPATH')] if p])
    cmd = [sys.executable, os.path.join(HERE, 'peer_workers.py'), tool, data_path, out,
           '--reps', str(args.reps), '--threads', str(args.threads), '--model', args.model,
           '--sam-mode', args.sam_mode]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ['no output'])[-1]
        return [dict(tool=tool, error=f'exit {proc.returncode}: {tail}')]
    with open(out) as f:
        return json.load(f)


def fmt(value, estimate=False):
    return f'{"-":>8} ' if value is None else f'{value:8.2f}{"*" if estimate else " "}'


def print_table(records, images, args):
    by = {(r['tool'], r.get('size')): r for r in records}
    print(f'\n{"size":>10} {"tool":22} {"net s":>9} {"post s":>9} {"whole s":>9} '
          f'{"ours/peer net":>13} {"ours/peer whole":>15} {"peak MiB":>9} {"nuclei":>6}')
    for size in args.sizes:
        ours = by.get(('ours', size))
        for tool in args.tools:
            rec = by.get((tool, size))
            if rec is None:
                continue
            est = rec.get('estimate', False)
            ratio_net = ratio_whole = ''
            if ours and tool != 'ours' and rec['net'] and rec['whole']:
                ratio_net = f'{ours["net"] / rec["net"]:.3f}{"*" if est else ""}'
                ratio_whole = f'{ours["whole"] / rec["whole"]:.3f}{"*" if est else ""}'
            print(f'{size:>10} {PEERS.get(tool, "ours (Mask R-CNN)"):22} {fmt(rec["net"], est)}'
                  f'{fmt(rec["post"])}{fmt(rec["whole"], est)} {ratio_net:>13} {ratio_whole:>15} '
                  f'{rec["maxrss_mib"]:9.0f} {rec["nuclei"]:6d}')
    for size in args.sizes:
        print(f'{size}: {images[size][2]}')
    for tool in args.tools:
        rec = next((r for r in records if r['tool'] == tool), {})
        print(f'{tool}: {rec.get("error") or rec.get("note", "")}')
    if any(r.get('estimate') for r in records):
        tile = next(r['tile_s'] for r in records if r.get('tile_s'))
        print(f'* estimate: one 256 px CPSAM tile took {tile:.2f} s; x the tile count '
              f'({", ".join(str(r["tiles"]) for r in records if "tiles" in r)} tiles)')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--tools', nargs='+', choices=TOOLS, default=list(TOOLS))
    parser.add_argument('--sizes', nargs='+', default=['256x256', '520x696', '1024x1024'])
    parser.add_argument('--reps', type=int, default=1)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--images', default=DSB, help='DSB2018 stage1_train layout, or synthetic')
    parser.add_argument('--peer-env', default='work_dirs/peer_env')
    parser.add_argument('--sam-mode', choices=('tile', 'full'), default='tile',
                        help='Cellpose-SAM net: one tile x tile count (tile), or its eval (full)')
    parser.add_argument('--model', default='nucleiseg_mrcnn', help="ours: a shipped model")
    args = parser.parse_args(argv)
    if args.images == DSB and not os.path.isdir(DSB):
        args.images = 'synthetic'
    problem = check_args(args)
    if problem:
        print(f'error: {problem}', file=sys.stderr)
        return 2
    images = make_images(args)
    print(f'tools {" ".join(args.tools)}; sizes {" ".join(args.sizes)}; reps {args.reps}; '
          f'torch threads {args.threads}; images {args.images}', flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data_path = os.path.join(tmp, 'images.npz')
        np.savez(data_path, **{f'{k}_{s}': v for s, (img, lab, _) in images.items()
                               for k, v in (('image', img), ('labels', lab))})
        records = []
        for tool in args.tools:
            records += run_tool(tool, data_path, tmp, args)
            print(f'{tool} done', flush=True)
    print_table(records, images, args)
    return 1 if any('error' in r for r in records) else 0


if __name__ == '__main__':
    raise SystemExit(main())
