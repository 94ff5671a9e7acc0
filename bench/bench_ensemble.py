"""Members and ensembles on identical predictions, per image kind, with error counts.

Each member predicts every validation image once; every merge then reads the
same label maps, so the comparison is exact. Errors are counted against the
ground truth at IoU 0.5: missed (a true nucleus no prediction matches),
false positive (a prediction matching none), merged (a prediction holding most
of two or more true nuclei) and split (a true nucleus whose area is mostly in
two or more predictions).

    python bench/bench_ensemble.py ENSEMBLE_CONFIG [--tta] [--grid] [--limit N] [--overlays DIR]
"""
import argparse
import os
import time

import numpy as np
from mmengine.registry import init_default_scope
from mmdet.registry import DATASETS, MODELS

import custom_modules  # noqa: F401
from custom_modules.evaluation.metric import score_label_maps
from custom_modules.inference.consensus import consensus_merge
from custom_modules.inference.ensemble import split_by
from custom_modules.structures.label_map import filter_prediction, gt_label_map
from custom_modules.structures.label_ops import label_map_iou
from custom_modules.inference.model_zoo import load_config

ERRORS = ('missed', 'false_pos', 'merged', 'split')
GRID_SCORES = (0.0, 0.4, 0.5, 0.6, 0.7)


def count_errors(gt: np.ndarray, pred: np.ndarray) -> dict:
    """Missed, false-positive, merged and split nuclei of one image (module doc)."""
    n_gt, n_pred = int(gt.max()), int(pred.max())
    out = dict.fromkeys(ERRORS, 0)
    if n_gt == 0 or n_pred == 0:
        out.update(missed=n_gt, false_pos=n_pred)
        return out
    iou = label_map_iou(gt, pred, n_gt, n_pred)
    out['missed'] = int((iou.max(1) <= 0.5).sum())
    out['false_pos'] = int((iou.max(0) <= 0.5).sum())
    joint = np.bincount(gt.ravel().astype(np.int64) * (n_pred + 1) + pred.ravel(),
                        minlength=(n_gt + 1) * (n_pred + 1)).reshape(n_gt + 1, n_pred + 1)
    inter = joint[1:, 1:]
    gt_area, pred_area = joint[1:].sum(1), joint[:, 1:].sum(0)
    out['merged'] = int(((inter > 0.5 * gt_area[:, None]).sum(0) >= 2).sum())
    pieces = (inter > 0.25 * gt_area[:, None]) & (inter > 0.5 * pred_area[None, :])
    out['split'] = int((pieces.sum(1) >= 2).sum())
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='an ensemble config (configs/dsb_ensemble_cpu.py)')
    parser.add_argument('--tta', action='store_true', help="each member with its config's TTA")
    parser.add_argument('--limit', type=int, help='only the first N validation images')
    parser.add_argument('--grid', action='store_true',
                        help='two members: also weights 0.6/0.4 either way at vote 0.5 (the '
                        "leading member's pixels and nuclei, each kept when the weighted mean "
                        f'score reaches {GRID_SCORES}); chosen on the same images, so optimistic')
    parser.add_argument('--overlays', help="write overlay PNGs (each method's outlines) of the "
                        "four images the first member scores worst on here")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)  # fills the fields of configs/_base_
    init_default_scope('mmdet')
    ens = MODELS.build(dict(cfg.model, tta=args.tta)).eval()
    weights, min_area = ens.weights, ens.min_area
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    n = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    names = [os.path.basename(m['config']).replace('.py', '') for m in cfg.model.members]
    rows, seconds, kept, true_total = [], np.zeros(len(names)), [], 0
    for i in range(n):
        data = dataset[i]
        sample = data['data_samples']
        img = data['inputs'].permute(1, 2, 0).numpy()
        gt = gt_label_map(sample)
        true_total += int(gt.max())
        preds = []
        for k, member in enumerate(ens.members):
            start = time.perf_counter()
            preds.append(member.predict_label_map(img))
            seconds[k] += time.perf_counter() - start
        maps = {name: filter_prediction(p, 0.0, min_area) for name, p in zip(names, preds)}
        for thr in (0.5, 1.0):
            maps[f'consensus vote {thr}'] = consensus_merge(preds, weights, ens.match_iou, thr,
                                                            min_area)
        maps['split (1st by 2nd)'] = filter_prediction(split_by(preds[0], preds[1]), 0, min_area)
        if args.grid:  # two members: the heavier one's pixels, nuclei cut by the weighted score
            for lead in (0, 1):
                w = [0.6, 0.4] if lead == 0 else [0.4, 0.6]
                merged = consensus_merge(preds, w, ens.match_iou, 0.5, min_area)
                for thr in GRID_SCORES:
                    maps[f'{names[lead][:12]} led, score {thr}'] = filter_prediction(merged, thr, 0)
        kind = sample.metainfo.get('stratum', '').split('/')[0]
        rows.append((kind, {k: (float(score_label_maps(gt, m.label_map).mean()),
                                count_errors(gt, m.label_map)) for k, m in maps.items()}))
        kept.append((rows[-1][1][names[0]][0], sample.img_path, img, gt, maps))
        kept = sorted(kept, key=lambda x: x[0])[:4]  # the worst for the first member
    kinds = sorted({r[0] for r in rows})
    print(f'{n} images; prediction s/image: ' +
          ', '.join(f'{nm} {s / n:.2f}' for nm, s in zip(names, seconds)) +
          (' (with TTA)' if args.tta else ''))
    print('method'.ljust(30) + 'all'.rjust(8) + ''.join(k.rjust(13) for k in kinds) +
          ''.join(e.rjust(11) for e in ERRORS))
    for name in rows[0][1]:
        line = name.ljust(30) + f'{np.mean([r[1][name][0] for r in rows]):8.4f}'
        line += ''.join(f'{np.mean([r[1][name][0] for r in rows if r[0] == k]):13.4f}'
                        for k in kinds)
        line += ''.join(f'{sum(r[1][name][1][e] for r in rows):11d}' for e in ERRORS)
        print(line)
    print(f'{true_total} true nuclei')
    if args.overlays:
        from custom_modules.io.atomic import write_atomic
        from custom_modules.io.exporters import overlay_png
        os.makedirs(args.overlays, exist_ok=True)
        for _, path, img, gt, maps in kept:
            for name, pred in maps.items():
                if ' led, score ' in name:  # --grid rows: tables only
                    continue
                tag = ''.join(c if c.isalnum() or c == '.' else '_' for c in name)
                out = os.path.join(args.overlays, f'{os.path.basename(path)[:12]}_{tag}.png')
                write_atomic(out, overlay_png(img, pred))


if __name__ == '__main__':
    main()
