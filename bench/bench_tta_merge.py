"""TTA merges compared on identical view predictions: the old first-seen merge, the consensus.

Every view of every validation image is predicted once; both merges then read
the same per-view label maps, so the comparison is exact. The old merge is
also run with the identity view last, to show its dependence on view order.

    python bench/bench_tta_merge.py CONFIG CHECKPOINT [--limit N]
"""
import argparse
import time

import numpy as np
from mmengine.registry import init_default_scope
from mmdet.registry import DATASETS, MODELS

import custom_modules  # noqa: F401
from custom_modules.evaluation.metric import score_label_maps
from custom_modules.inference.builder import load_weights, predictor_cfg
from custom_modules.inference.consensus import consensus_merge
from custom_modules.structures.label_map import gt_label_map
from custom_modules.structures.label_ops import label_map_iou, relabel
from custom_modules.inference.model_zoo import load_config


def first_seen_merge(frames, match_iou=0.5, vote_thr=0.5, min_area=0):
    """The merge before the consensus (commit f06f672), kept here to measure it.

    Each view's nuclei are matched against the first-seen extent of every
    cluster, so the first view's mistakes become the anchors.
    """
    shape = frames[0].label_map.shape
    anchor = np.zeros(shape, np.int32)
    score_sum, keys = [], []
    for pred in frames:
        label_map, scores = pred.label_map, pred.scores
        n, c = len(scores), len(score_sum)
        lut = np.zeros(n + 1, np.int64)
        if n and c:
            iou = label_map_iou(label_map, anchor, n, c)
            best = iou.argmax(1)
            matched = iou[np.arange(n), best] > match_iou
            lut[1:][matched] = best[matched] + 1
        new = np.flatnonzero(lut[1:] == 0) + 1
        lut[new] = np.arange(c + 1, c + 1 + len(new))
        score_sum.extend([0.0] * len(new))
        free = (anchor == 0) & (label_map > 0)
        anchor[free] = np.where(np.isin(label_map[free], new), lut[label_map[free]], 0)
        for lab in range(1, n + 1):
            score_sum[lut[lab] - 1] += float(scores[lab - 1])
        pix = np.flatnonzero(label_map)
        keys.append(pix * (1 << 24) + lut[label_map.ravel()[pix]])
    keys = np.concatenate(keys)
    out = np.zeros(int(np.prod(shape)), np.int32)
    if keys.size:
        uniq, votes = np.unique(keys, return_counts=True)
        pix, cluster = uniq >> 24, uniq & ((1 << 24) - 1)
        enough = votes >= max(1, int(np.ceil(vote_thr * len(frames) - 1e-9)))
        pix, cluster, votes = pix[enough], cluster[enough], votes[enough]
        order = np.lexsort((cluster, -votes, pix))
        first = np.ones(len(order), bool)
        first[1:] = pix[order][1:] != pix[order][:-1]
        out[pix[order][first]] = cluster[order][first]
    scores = np.asarray(score_sum) / len(frames)
    order = np.argsort(-scores, kind='stable')
    rank = np.zeros(len(order) + 1, np.int32)
    rank[order + 1] = np.arange(1, len(order) + 1)
    return relabel(rank[out.reshape(shape)], order, min_area)[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--limit', type=int, help='only the first N validation images')
    args = parser.parse_args(argv)
    cfg = load_config(args.config)  # fills the fields of configs/_base_
    init_default_scope('mmdet')
    tta = MODELS.build(predictor_cfg(cfg, tta=True, tile=0)).eval()
    load_weights(tta, args.checkpoint)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    n = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    rows, seconds = [], 0.0
    for i in range(n):
        data = dataset[i]
        sample = data['data_samples']
        img = data['inputs'].permute(1, 2, 0).numpy()
        gt = gt_label_map(sample)
        start = time.perf_counter()
        views = [tta.predict_view(img, view) for view in tta.views]
        seconds += time.perf_counter() - start
        min_area = tta.post.min_area
        maps = dict(
            single=relabel(views[0].label_map, np.arange(len(views[0])), min_area)[0],
            first_seen=first_seen_merge(views, tta.match_iou, tta.vote_thr, min_area),
            first_seen_identity_last=first_seen_merge(views[1:] + views[:1], tta.match_iou,
                                                      tta.vote_thr, min_area),
            consensus=consensus_merge(views, match_iou=tta.match_iou, vote_thr=tta.vote_thr,
                                      min_area=min_area).label_map,
            consensus_reversed=consensus_merge(views[::-1], match_iou=tta.match_iou,
                                               vote_thr=tta.vote_thr, min_area=min_area).label_map)
        kind = sample.metainfo.get('stratum', '').split('/')[0]
        rows.append((kind, {k: float(score_label_maps(gt, m).mean()) for k, m in maps.items()}))
    names = list(rows[0][1])
    print(f'{n} images, {len(tta.views)} views, {seconds / n:.2f} s/image for the views on this '
          'machine (prediction only)')
    print('merge'.ljust(26) + 'all'.rjust(8) + ''.join(k.rjust(12) for k in sorted({r[0] for r in rows})))
    for name in names:
        line = name.ljust(26) + f'{np.mean([r[1][name] for r in rows]):8.4f}'
        for kind in sorted({r[0] for r in rows}):
            line += f'{np.mean([r[1][name] for r in rows if r[0] == kind]):12.4f}'
        print(line)


if __name__ == '__main__':
    main()
