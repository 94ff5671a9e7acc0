"""One consensus of N label maps of one frame: TTA views, tiles' overlaps, ensembles.

The algorithm (no input is special, whatever its position):

1. Inputs are put in a canonical order (by a fingerprint of their content),
   so every later tie is broken the same way for every order of the inputs.
2. Instances of two different inputs are linked when they have the same class
   and a mask IoU above ``match_iou`` (> 0.5: at most one partner per input).
3. Links are taken from the highest IoU down; a link joins two clusters only
   when they hold no instance of the same input (a cluster is one nucleus as
   seen by at most one instance per input). Two nuclei that most inputs
   separate therefore never fuse, whatever one input merged or split.
4. A pixel belongs to a cluster when the inputs putting it there weigh at least
   ``vote_thr`` of the total weight; a pixel claimed by two clusters goes to
   the one with more weight on it. A cluster's score is the weighted mean of
   its members' scores over all inputs (an input that missed it counts 0).
5. Labels are numbered by decreasing score; clusters under ``min_area`` go.
"""
import hashlib
from typing import Optional, Sequence

import numpy as np

from custom_modules.structures.label_map import LabelMapPrediction
from custom_modules.structures.label_ops import label_overlap, relabel
from custom_modules.structures.union_find import UnionFind


def fingerprint(pred: LabelMapPrediction, weight: float) -> bytes:
    """Content hash of one input: equal inputs are interchangeable."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (pred.label_map, np.asarray(pred.scores, np.float64),
                  np.asarray(pred.classes, np.int64), np.asarray([weight], np.float64)):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.digest()


class _Clusters(UnionFind):
    """Union-find over instances that keeps each cluster's set of inputs: two clusters
    holding an instance of one input never join."""

    def __init__(self, owner: np.ndarray) -> None:
        super().__init__(len(owner))
        self.inputs = [{int(i)} for i in owner]

    def join(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx == ry or self.inputs[rx] & self.inputs[ry]:
            return
        root = self.union(rx, ry)
        self.inputs[root] |= self.inputs[rx + ry - root]
        self.inputs[rx + ry - root] = set()


def consensus_merge(preds: Sequence[LabelMapPrediction], weights: Optional[Sequence[float]] = None,
                    match_iou: float = 0.5, vote_thr: float = 0.5,
                    min_area: int = 0) -> LabelMapPrediction:
    """Merge label maps of one frame into their consensus (see the module doc).

    Args:
        preds: the inputs, all of one shape.
        weights: one positive weight per input (default: all 1).
        match_iou: link threshold, at least 0.5 (one partner per input).
        vote_thr: share of the total weight a pixel needs, in (0, 1].
        min_area: merged nuclei smaller than this go.

    Returns:
        The consensus, labels by decreasing score; the same for every order
        of the inputs.
    """
    if not preds:
        raise ValueError('consensus_merge needs at least one input')
    if match_iou < 0.5:
        raise ValueError(f'match_iou {match_iou} < 0.5 would allow one-to-many matches')
    if not 0 < vote_thr <= 1:
        raise ValueError(f'vote_thr must be in (0, 1], got {vote_thr}')
    weights = np.ones(len(preds)) if weights is None else np.asarray(weights, np.float64)
    if weights.shape != (len(preds), ) or (weights <= 0).any():
        raise ValueError(f'need {len(preds)} positive weights, got {weights.tolist()}')
    shape = preds[0].label_map.shape
    for pred in preds:
        if pred.check().label_map.shape != shape:
            raise ValueError(f'label maps of shapes {shape} and {pred.label_map.shape} '
                             'are not of one frame')
    order = sorted(range(len(preds)), key=lambda i: fingerprint(preds[i], weights[i]))
    preds, weights = [preds[i] for i in order], weights[order]

    counts = np.array([len(p) for p in preds])
    offsets = np.concatenate([[0], np.cumsum(counts)])
    owner = np.repeat(np.arange(len(preds)), counts)
    scores = np.concatenate([np.asarray(p.scores, np.float64) for p in preds] + [np.zeros(0)])
    classes = np.concatenate([np.asarray(p.classes, np.int64) for p in preds] + [np.zeros(0, int)])
    areas = [np.bincount(p.label_map.ravel(), minlength=len(p) + 1)[1:] for p in preds]

    links = []  # (iou, global a, global b)
    for i in range(len(preds)):
        for j in range(i + 1, len(preds)):
            la, lb, inter = label_overlap(preds[i].label_map, preds[j].label_map)
            iou = inter / (areas[i][la - 1] + areas[j][lb - 1] - inter)
            ga, gb = offsets[i] + la - 1, offsets[j] + lb - 1
            ok = (iou > match_iou) & (classes[ga] == classes[gb])
            links.append(np.stack([iou[ok], ga[ok], gb[ok]], 1))
    links = np.concatenate(links) if links else np.zeros((0, 3))
    clusters = _Clusters(owner)
    for _, a, b in links[np.lexsort((links[:, 2], links[:, 1], -links[:, 0]))]:
        clusters.join(int(a), int(b))
    roots = np.array([clusters.find(g) for g in range(len(owner))], np.int64)
    cluster_ids, member_cluster = np.unique(roots, return_inverse=True)
    n_clusters = len(cluster_ids)

    total = weights.sum()
    cluster_score = np.bincount(member_cluster, weights=scores * weights[owner],
                                minlength=n_clusters) / total
    votes = _pixel_votes(preds, weights, offsets, member_cluster, n_clusters,
                         vote_thr * total - 1e-9)
    # Rank by score (ties: the cluster's first instance in canonical order).
    rank_order = np.lexsort((cluster_ids, -cluster_score))
    rank = np.zeros(n_clusters + 1, np.int32)
    rank[rank_order + 1] = np.arange(1, n_clusters + 1)
    label_map, kept = relabel(rank[votes].reshape(shape), rank_order, min_area)
    cluster_class = np.zeros(n_clusters, np.int64)
    cluster_class[member_cluster] = classes
    return LabelMapPrediction(label_map, cluster_score[kept].astype(np.float32),
                              cluster_class[kept])


def _pixel_votes(preds, weights, offsets, member_cluster, n_clusters, need) -> np.ndarray:
    """Flat map of cluster ids + 1 (0: none) from weighted per-pixel votes."""
    size = preds[0].label_map.size
    out = np.zeros(size, np.int64)
    if n_clusters == 0:
        return out
    keys, key_weights = [], []
    for pred, weight, offset in zip(preds, weights, offsets):
        flat = pred.label_map.ravel()
        pix = np.flatnonzero(flat)
        keys.append(pix * n_clusters + member_cluster[offset + flat[pix] - 1])
        key_weights.append(np.full(len(pix), weight))
    keys, key_weights = np.concatenate(keys), np.concatenate(key_weights)
    sort = np.argsort(keys, kind='stable')
    keys, key_weights = keys[sort], key_weights[sort]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    uniq, votes = keys[starts], np.add.reduceat(key_weights, starts) if len(keys) else np.zeros(0)
    enough = votes >= need
    pix, cluster, votes = uniq[enough] // n_clusters, uniq[enough] % n_clusters, votes[enough]
    if len(pix) == 0:
        return out
    # Per pixel: the most weight first, then the lower cluster id.
    best = np.lexsort((cluster, -votes, pix))
    first = np.r_[True, pix[best][1:] != pix[best][:-1]]
    out[pix[best][first]] = cluster[best][first] + 1
    return out
