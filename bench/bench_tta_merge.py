"""TTA merges and view sets compared on identical view predictions.

Every view of every validation image is predicted once; every merge then reads
the same per-view predictions, so the comparison is exact. Label-map TTA (the
Mask R-CNN's): the old first-seen merge (also with the identity view last, to
show its dependence on view order) and the consensus. ``--subsets`` scores
smaller view sets (indices into the config's views, e.g. ``0,1,2,4``) merged as
the config merges (consensus of label maps, or the mean of probabilities), each
with its cost: the seconds its views took against the identity view's.

    python bench/bench_tta_merge.py CONFIG CHECKPOINT [--limit N] [--every K --offset I]
        [--subsets 0,1,2,4 0,4 ...] [--ann-file COCO_JSON] [--tta-views full]
"""
import argparse
import time

import numpy as np
from mmengine.registry import init_default_scope
from mmdet.registry import DATASETS, MODELS

import custom_modules  # noqa: F401
from custom_modules.evaluation.metric import score_label_maps
from custom_modules.inference.builder import add_tta_arguments, load_weights, predictor_cfg
from custom_modules.inference.consensus import consensus_merge
from custom_modules.inference.tta import check_view
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


def view_subset(text: str) -> list:
    """``'0,1,4'`` -> ``[0, 1, 4]`` (distinct view indices)."""
    try:
        subset = [int(k) for k in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError(f'not comma-separated view indices: {text!r}') from None
    if not subset or min(subset) < 0 or len(set(subset)) < len(subset):
        raise argparse.ArgumentTypeError(f'need distinct view indices >= 0: {text!r}')
    return subset


def label_map_merges(tta, views) -> dict:
    """The identity view alone, the old first-seen merge (both orders) and the consensus
    (both orders) of one image's per-view label maps."""
    min_area = tta.post.min_area
    return dict(
        single=relabel(views[0].label_map, np.arange(len(views[0])), min_area)[0],
        first_seen=first_seen_merge(views, tta.match_iou, tta.vote_thr, min_area),
        first_seen_identity_last=first_seen_merge(views[1:] + views[:1], tta.match_iou,
                                                  tta.vote_thr, min_area),
        consensus=consensus_merge(views, match_iou=tta.match_iou, vote_thr=tta.vote_thr,
                                  min_area=min_area).label_map,
        consensus_reversed=consensus_merge(views[::-1], match_iou=tta.match_iou,
                                           vote_thr=tta.vote_thr, min_area=min_area).label_map)


def merge_subset(tta, views, subset) -> np.ndarray:
    """The label map of the views in ``subset``, merged as the TTA model merges."""
    return tta.merge_outputs([views[k] for k in subset]).label_map


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--limit', type=int, help='only the first N validation images')
    parser.add_argument('--every', type=int, default=1, help='every K-th validation image')
    parser.add_argument('--offset', type=int, default=0, help='starting from this one')
    parser.add_argument('--subsets', nargs='*', default=[], type=view_subset,
                        help='view sets to score, as comma-separated view indices')
    parser.add_argument('--ann-file', help='another labelled COCO JSON than the test set')
    add_tta_arguments(parser, flag=False)
    args = parser.parse_args(argv)
    if args.every < 1 or args.offset < 0 or (args.limit is not None and args.limit <= args.offset):
        parser.error('need --every >= 1, --offset >= 0 and --limit above --offset')
    cfg = load_config(args.config)  # fills the fields of configs/_base_
    if args.ann_file:
        cfg.test_dataloader.dataset.ann_file = args.ann_file
    init_default_scope('mmdet')
    try:
        tta = MODELS.build(predictor_cfg(cfg, tta=args.tta, tile=0)).eval()
    except KeyError as err:
        parser.error(str(err.args[0]))
    load_weights(tta, args.checkpoint)
    if tta.views[0] != check_view({}):
        parser.error(f'{args.config}: the first view must be the identity (the cost unit)')
    for subset in args.subsets:
        if max(subset) >= len(tta.views):
            parser.error(f'--subsets: view {max(subset)} of {len(tta.views)}')
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    n = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    if args.offset >= n:
        parser.error(f'--offset {args.offset}: the test set has {n} images')
    rows, seconds = [], np.zeros(len(tta.views))
    for i in range(args.offset, n, args.every):
        data = dataset[i]
        sample = data['data_samples']
        img = data['inputs'].permute(1, 2, 0).numpy()
        gt = gt_label_map(sample)
        views = []
        for k, view in enumerate(tta.views):
            start = time.perf_counter()
            views.append(tta.view_probs(img, view) if tta.merge == 'probabilities'
                         else tta.predict_view(img, view))
            seconds[k] += time.perf_counter() - start
        maps = label_map_merges(tta, views) if tta.merge != 'probabilities' else dict(
            single=merge_subset(tta, views, [0]))
        for subset in args.subsets:
            maps['views ' + ','.join(map(str, subset))] = merge_subset(tta, views, subset)
        kind = sample.metainfo.get('stratum', '').split('/')[0]
        rows.append((kind, {k: float(score_label_maps(gt, m).mean()) for k, m in maps.items()}))
    names = list(rows[0][1])
    print(f'{len(rows)} images, {len(tta.views)} views, {seconds.sum() / len(rows):.2f} s/image '
          'for the views on this machine (prediction only); cost of each view against the '
          'identity: ' + ' '.join(f'{k}:{t / seconds[0]:.2f}' for k, t in enumerate(seconds)))
    for subset in args.subsets:
        print(f'views {",".join(map(str, subset))}: cost {seconds[subset].sum() / seconds[0]:.2f}'
              ' x one view')
    print('merge'.ljust(26) + 'all'.rjust(8) + ''.join(k.rjust(12) for k in sorted({r[0] for r in rows})))
    for name in names:
        line = name.ljust(26) + f'{np.mean([r[1][name] for r in rows]):8.4f}'
        for kind in sorted({r[0] for r in rows}):
            line += f'{np.mean([r[1][name] for r in rows if r[0] == kind]):12.4f}'
        print(line)


if __name__ == '__main__':
    main()
