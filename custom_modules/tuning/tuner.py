"""Post-processing thresholds tuned on cached raw predictions (``tools/tune_thresholds.py``).

The model runs once over a labelled set; what it predicts before any cut-off
is kept (the *raw cache*), per image and per TTA view:

- Mask R-CNN: :class:`~custom_modules.models.instances.SoftInstances` (score, class,
  box and uint8 soft mask cropped to the box of every detection above a low
  score threshold, no cap on their number), in the view's frame;
- U-Net: the heads' probabilities (float16 by default), in the view's frame,
  or the views' mean when the TTA averages probabilities.

Each family captures it with ``capture_raw`` and predicts from it with
``predict_from_raw(raw, settings)``: its own ``predict_label_map`` is
``predict_from_raw(capture_raw(img))``. A candidate setting is then scored from
the cache alone, in three stages that are the code the models run (so it scores
what the model predicts with it):

1. a raw label map per image and view: the network's ``predict_from_raw`` with
   the candidate's stage-1 settings (its ``raw_settings`` keys); a TTA view
   then goes through :func:`~custom_modules.inference.tta.view_to_original`;
2. :func:`~custom_modules.inference.tta.merge_views`: the views' consensus
   (``vote_thr``) and ``min_area``;
3. ``apply_postprocess`` (dilation), then the DSB score of each image.

Candidates are scored together, image by image: those sharing their stage-1
(or stage-1 and 2) settings compute them once. :func:`coordinate_descent`
sweeps one setting (one class's threshold) at a time over its grid.
"""
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from custom_modules.evaluation.metric import score_label_maps
from custom_modules.inference.tta import (NucleusTTAModel, merge_views, view_inputs,
                                          view_to_original)
from custom_modules.models.detector import NucleusMaskRCNN
from custom_modules.models.instances import PostProcess, apply_postprocess
from custom_modules.models.unet import NucleusUNet
from custom_modules.structures.label_map import LabelMapPrediction, filter_prediction, gt_label_map
from custom_modules.structures.predictor import innermost

CACHE_VERSION = 1
STAGES = dict(score_thr=1, mask_thr=1, max_per_img=1, nucleus_thr=1, marker_thr=1, edge_thr=1,
              vote_thr=2, min_area=2, dilation=3)
INTS = ('max_per_img', 'min_area', 'dilation')
UNIT = ('mask_thr', 'vote_thr', 'nucleus_thr', 'marker_thr', 'edge_thr')  # in (0, 1]
PER_CLASS = ('score_thr', 'mask_thr')


def _steps(lo: float, hi: float, step: float) -> Tuple[float, ...]:
    return tuple(round(v, 4) for v in np.arange(lo, hi + step / 2, step))


DEFAULT_GRIDS = dict(
    score_thr=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
    mask_thr=_steps(0.3, 0.7, 0.05), max_per_img=(100, 200, 300, 512, 1000),
    nucleus_thr=_steps(0.3, 0.7, 0.05), marker_thr=_steps(0.3, 0.8, 0.1),
    edge_thr=_steps(0.3, 0.7, 0.1), vote_thr=_steps(0.2, 0.8, 0.1),
    min_area=(0, 5, 10, 15, 20, 30, 40), dilation=(0, 1, 2))

Settings = Dict[str, object]  # name -> number, or a tuple of one per class


FAMILIES = {'mask_rcnn': NucleusMaskRCNN, 'unet': NucleusUNet}  # the cache's family names


def model_family(model) -> str:
    """``'mask_rcnn'`` or ``'unet'`` (ValueError for any other model)."""
    net = innermost(model)
    for name, cls in FAMILIES.items():
        if isinstance(net, cls):
            return name
    raise ValueError(f'{type(net).__name__}: only NucleusMaskRCNN and NucleusUNet are tuned')


def tta_spec(model) -> Optional[dict]:
    """What stages need of a TTA wrapper (``None`` without one)."""
    if not isinstance(model, NucleusTTAModel):
        return None
    return dict(views=list(model.views), merge=model.merge, match_iou=model.match_iou,
                score_thr=model.score_thr, has_post=model.post is not getattr(
                    innermost(model), 'postprocess', None))


def model_settings(model) -> Settings:
    """The settings a built predictor uses (the search starts there)."""
    net, tta = innermost(model), tta_spec(model)
    post = model.post if tta else net.postprocess
    out: Settings = dict(net.raw_settings())
    if tta and tta['merge'] == 'label_maps':
        out['vote_thr'] = model.vote_thr
    out.update(min_area=post.min_area, dilation=post.dilation_radius)
    return out


def capture(model, dataset, raw_score_thr: float, prob_dtype=np.float16,
            progress: Callable[[str], None] = print) -> List[dict]:
    """Run the model once over ``dataset``: per image its name, ground truth and raw views
    (float arrays, the probabilities, kept as ``prob_dtype``)."""
    net, tta = innermost(model), tta_spec(model)
    images = []
    for i in range(len(dataset)):
        item = dataset[i]
        sample = item['data_samples']
        img = item['inputs'].permute(1, 2, 0).cpu().numpy()
        if img.shape[:2] != tuple(sample.ori_shape)[:2]:
            raise ValueError(f'{sample.img_path}: the pipeline resized the image; label-map '
                             'predictors need it at its original size')
        gt = gt_label_map(sample.to_dict())
        if gt is None:
            raise ValueError(f'{sample.img_path}: no ground-truth masks (the pipeline needs '
                             'LoadAnnotations with_mask=True)')
        if tta is None:
            raw = [net.capture_raw(img, None, raw_score_thr)]
        elif tta['merge'] == 'probabilities':
            raw = [model.predict_probs(img)]  # the views' mean: what the TTA model decodes
        else:
            raw = [net.capture_raw(*view_inputs(img, v), raw_score_thr) for v in tta['views']]
        raw = [r.astype(prob_dtype) if isinstance(r, np.ndarray) and r.dtype.kind == 'f' else r
               for r in raw]
        gt_type = np.uint16 if gt.max() < 2**16 else np.int32
        images.append(dict(name=sample.get('img_path', str(i)), gt=gt.astype(gt_type), raw=raw))
        if (i + 1) % 10 == 0 or i + 1 == len(dataset):
            progress(f'predicted {i + 1}/{len(dataset)} images')
    return images


class Scorer:
    """Scores settings from a raw cache (see the module doc).

    Args:
        cache: the raw cache dict (``family``, ``tta``, ``images``, ...).
        net: the network that made it (its ``predict_from_raw`` replays stage 1).
        metric_filter: ``(score_thr, min_area)`` of the test metric (DSBMetric).
    """

    def __init__(self, cache: dict, net, metric_filter: Tuple[float, int] = (0.0, 0)) -> None:
        self.cache, self.tta, self.net = cache, cache['tta'], net
        self.metric_filter = metric_filter

    def view_prediction(self, raw, view: Optional[dict], s: Settings) -> LabelMapPrediction:
        """Stage 1 for one view: as ``NucleusTTAModel.predict_view`` (no view: the model)."""
        pred = self.net.predict_from_raw(raw, s, raw=True)
        return pred if view is None else view_to_original(pred, view, self.tta['score_thr'])

    def merged(self, views: List[LabelMapPrediction], s: Settings) -> LabelMapPrediction:
        """Stage 2: the views' consensus, or one prediction, without its small nuclei."""
        if self.tta is None:
            return merge_views(views, s['min_area'], merge='none')
        return merge_views(views, s['min_area'], self.tta['merge'], self.tta['match_iou'],
                           s.get('vote_thr', 0.5), self.tta['score_thr'])

    def final(self, pred: LabelMapPrediction, s: Settings) -> LabelMapPrediction:
        """Stage 3: dilation, then what the metric drops (``DSBMetric`` score_thr, min_area)."""
        pred = apply_postprocess(pred, PostProcess(s['min_area'], s['dilation']))
        if self.metric_filter[0] > 0 or self.metric_filter[1] > 0:
            pred = filter_prediction(pred, *self.metric_filter)
        return pred

    def predictions(self, candidates: Sequence[Settings]) -> Iterable[Tuple[dict, list]]:
        """Per image: ``(image, [final prediction of each candidate])``."""
        views = [None] if self.tta is None or self.tta['merge'] == 'probabilities' \
            else self.tta['views']
        keys = [(_key(s, 1), _key(s, 2)) for s in candidates]
        for image in self.cache['images']:
            first, second, out = {}, {}, []
            for s, (k1, k2) in zip(candidates, keys):
                if k1 not in first:
                    first[k1] = [self.view_prediction(raw, view, s)
                                 for raw, view in zip(image['raw'], views)]
                if (k1, k2) not in second:
                    second[(k1, k2)] = self.merged(first[k1], s)
                out.append(self.final(second[(k1, k2)], s))
            yield image, out

    def score(self, candidates: Sequence[Settings]) -> List[float]:
        """The DSB score (mean over images of the mean over IoU thresholds) of each candidate."""
        per_image = [[] for _ in candidates]
        for image, preds in self.predictions(candidates):
            for rows, pred in zip(per_image, preds):
                rows.append(score_label_maps(image['gt'], pred.label_map))
        return [float(np.stack(rows).mean()) if rows else 0.0 for rows in per_image]


def _key(s: Settings, stage: int) -> tuple:
    return tuple((k, s[k]) for k in sorted(s) if STAGES[k] == stage)


def freeze(s: Settings) -> tuple:
    """A hashable form of settings."""
    return tuple(sorted(s.items()))


def coordinates(start: Settings, grids: Dict[str, Sequence]) -> List[Tuple[str, Optional[int]]]:
    """``(name, class or None)`` of every swept setting, stage 1 first."""
    out = []
    for name in sorted(start, key=lambda k: (STAGES[k], list(STAGES).index(k))):
        if len(grids.get(name, ())) == 0:
            continue
        if name in PER_CLASS:
            out += [(name, c) for c in range(len(start[name]))]
        else:
            out.append((name, None))
    return out


def with_value(s: Settings, coord: Tuple[str, Optional[int]], value) -> Settings:
    name, cls = coord
    if cls is None:
        return dict(s, **{name: value})
    values = list(s[name])
    values[cls] = value
    return dict(s, **{name: tuple(values)})


def coordinate_descent(score: Callable[[List[Settings]], List[float]], start: Settings,
                       grids: Dict[str, Sequence], rounds: int = 2,
                       progress: Callable[[str], None] = print):
    """Sweep each coordinate over its grid, keep the best, repeat up to ``rounds`` times.

    A value replaces the current one only when it scores strictly better.

    Returns:
        ``(best settings, best score, trials)``; trials are ``(settings,
        score)`` in the order tried, the start first.
    """
    trials: Dict[tuple, Tuple[Settings, float]] = {}

    def run(candidates: List[Settings]) -> None:
        new = list({freeze(c): c for c in candidates if freeze(c) not in trials}.values())
        for cand, value in zip(new, score(new) if new else []):
            trials[freeze(cand)] = (cand, value)

    run([start])
    best = start
    for round_ in range(rounds):
        before = freeze(best)
        for coord in coordinates(start, grids):
            candidates = [with_value(best, coord, v) for v in grids[coord[0]]]
            progress(f'round {round_ + 1}: {_name(coord, start)} over {len(candidates)} values')
            run(candidates)
            for cand in candidates:
                if trials[freeze(cand)][1] > trials[freeze(best)][1] + 1e-12:
                    best = cand
        if freeze(best) == before:
            break
    return best, trials[freeze(best)][1], list(trials.values())


def _name(coord, start: Settings) -> str:
    name, cls = coord
    return name if cls is None or len(start[name]) == 1 else f'{name}[{cls}]'


def changes(s: Settings, base: Settings) -> str:
    """``name=value`` of what differs from ``base`` (per class: ``name[c]=value``)."""
    out = []
    for name in s:
        if s[name] == base.get(name):
            continue
        if name in PER_CLASS:
            out += [f'{name}[{c}]={v:g}' if len(s[name]) > 1 else f'{name}={v:g}'
                    for c, (v, b) in enumerate(zip(s[name], base[name])) if v != b]
        else:
            out.append(f'{name}={s[name]:g}')
    return ' '.join(out) or "(the config's own)"


def trials_table(trials: List[Tuple[Settings, float]], best: Settings) -> str:
    """The table of what was tried: score, gain over the first (the config's own), changes."""
    base, base_score = trials[0]
    lines = [f'{"#":>4}  {"score":>7}  {"gain":>8}  settings changed from the config']
    for i, (s, value) in enumerate(trials):
        mark = '*' if freeze(s) == freeze(best) else ' '
        lines.append(f'{i:>4}{mark} {value:7.4f}  {value - base_score:+8.4f}  {changes(s, base)}')
    return '\n'.join(lines)
