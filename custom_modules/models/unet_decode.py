"""From a U-Net's pixel probabilities to instances (a label-map prediction).

Foreground is ``nucleus > nucleus_thr``. Seeds come from the ``marker`` head
when the model has one, else from the nucleus minus its edge head (``contour``
or ``boundary``), else from a higher nucleus threshold. Seeds grow over the
foreground by marker-controlled watershed on ``1 - nucleus + edge``, or by
the random walker (solved per foreground component holding two seeds or more,
which keeps it local). Foreground left without a seed becomes a nucleus of its
own; holes are filled, small nuclei dropped. A nucleus's score is its mean
nucleus probability.
"""
from typing import Dict, NamedTuple, Sequence

import numpy as np
from scipy import ndimage
from skimage.segmentation import random_walker, watershed

from custom_modules.structures.label_map import LabelMapPrediction
from custom_modules.structures.label_ops import relabel

METHODS = ('watershed', 'random_walker')


class DecodeSettings(NamedTuple):
    """How probabilities become instances (a misspelled key raises ``TypeError``).

    Attributes:
        method: 'watershed' or 'random_walker'.
        nucleus_thr: foreground threshold of the nucleus head.
        edge_thr: pixels whose edge probability exceeds it are no seed.
        marker_thr: seed threshold of the marker head (or of nucleus - edge).
        min_marker_area: smaller seeds are ignored (pixels).
        beta: the random walker's edge sensitivity; small, because a large
            one lets a contour ring (one flat ridge) carry one seed's label
            around its neighbour (beta 130, skimage's default, does).
    """
    method: str = 'watershed'
    nucleus_thr: float = 0.5
    edge_thr: float = 0.5
    marker_thr: float = 0.5
    min_marker_area: int = 4
    beta: float = 5.0


def make_decode(cfg) -> DecodeSettings:
    """:class:`DecodeSettings` from a config dict (``None``: defaults)."""
    settings = DecodeSettings(**(cfg or {}))
    if settings.method not in METHODS:
        raise ValueError(f'decode method must be one of {METHODS}, got {settings.method!r}')
    return settings


def seeds_of(probs: Dict[str, np.ndarray], fg: np.ndarray, s: DecodeSettings) -> np.ndarray:
    """Labelled seeds inside the foreground."""
    edge = probs.get('contour', probs.get('boundary'))
    if 'marker' in probs:
        seeds = probs['marker'] > s.marker_thr
    elif edge is not None:
        seeds = (probs['nucleus'] - edge > s.marker_thr) & (edge < s.edge_thr)
    else:
        seeds = probs['nucleus'] > max(s.marker_thr, s.nucleus_thr + 0.5 * (1 - s.nucleus_thr))
    labels, num = ndimage.label(seeds & fg)
    if num and s.min_marker_area > 1:
        areas = np.bincount(labels.ravel())
        labels[areas[labels] < s.min_marker_area] = 0
    return labels


def random_walk(elevation: np.ndarray, seeds: np.ndarray, fg: np.ndarray,
                beta: float) -> np.ndarray:
    """Random walker per foreground component with at least two seeds."""
    out = np.where(fg, seeds, 0)
    comps, _ = ndimage.label(fg)
    for index, box in enumerate(ndimage.find_objects(comps), start=1):
        if box is None:
            continue
        inside = comps[box] == index
        ids = np.unique(seeds[box][inside & (seeds[box] > 0)])
        if len(ids) == 0:
            continue
        if len(ids) == 1:
            out[box][inside] = ids[0]
            continue
        lut = np.zeros(int(ids.max()) + 1, np.int32)
        lut[ids] = np.arange(1, len(ids) + 1)
        local = np.where(inside, lut[seeds[box]], -1)  # -1: outside, not walked
        walked = random_walker(elevation[box], local, beta=beta, mode='cg_j', tol=1e-3)
        out[box][inside] = ids[np.clip(walked[inside], 1, None) - 1]
    return out


def fill_holes(label_map: np.ndarray) -> np.ndarray:
    """Fill each nucleus's holes with its own label (never over another)."""
    out = label_map.copy()
    for lab, box in enumerate(ndimage.find_objects(label_map), start=1):
        if box is None:
            continue
        filled = ndimage.binary_fill_holes(label_map[box] == lab)
        out[box][filled & (out[box] == 0)] = lab
    return out


def decode_probabilities(probs: Dict[str, np.ndarray], settings: DecodeSettings,
                         min_area: int = 0) -> LabelMapPrediction:
    """Instances of one image from its per-head ``H x W`` probabilities.

    Args:
        probs: head name -> probabilities; ``nucleus`` is required.
        settings: see :class:`DecodeSettings`.
        min_area: smaller nuclei are dropped (pixels).
    """
    nucleus = probs['nucleus']
    fg = nucleus > settings.nucleus_thr
    if not fg.any():
        return LabelMapPrediction.empty(nucleus.shape)
    fg = ndimage.binary_fill_holes(fg)
    seeds = seeds_of(probs, fg, settings)
    edge = probs.get('contour', probs.get('boundary'))
    elevation = 1.0 - nucleus + (edge if edge is not None else 0.0)
    if settings.method == 'watershed':
        label_map = watershed(elevation, seeds, mask=fg) if seeds.any() else np.zeros_like(seeds)
    else:
        label_map = random_walk(elevation, seeds, fg, settings.beta)
    unseeded, _ = ndimage.label(fg & (label_map == 0))
    label_map = np.where(unseeded > 0, unseeded + label_map.max(), label_map).astype(np.int32)
    label_map = fill_holes(label_map)
    label_map, kept = relabel(label_map, np.arange(int(label_map.max())), min_area)
    scores = ndimage.mean(nucleus, label_map, np.arange(1, len(kept) + 1)) if len(kept) else []
    return LabelMapPrediction(label_map, np.asarray(scores, np.float32),
                              np.zeros(len(kept), np.int64))


def probabilities_dict(array: np.ndarray, heads: Sequence[str]) -> Dict[str, np.ndarray]:
    """``C x H x W`` head probabilities as a name -> map dict."""
    if len(array) != len(heads):
        raise ValueError(f'{len(array)} probability maps for heads {tuple(heads)}')
    return dict(zip(heads, array))
