"""Score the classical baseline (Otsu + distance-transform watershed) on a data_prep JSON.

    python tools/classical_baseline.py ANN_JSON IMG_DIR [--out preds.pkl] [--min-area N]
        [--params FILE.json | --tune TRAIN_JSON [--tune-images N] [--seed S]]
        [--save-params FILE.json]

Prints the competition score (labelled JSON), overall and per image kind;
--out writes predictions in the format of tools/test.py --out, so
tools/export_rle.py turns them into a CSV.

--tune searches the small grid of ``custom_modules.models.classical.DEFAULT_GRID``
on the labelled TRAIN_JSON (a random subset of --tune-images of them, fixed
--seed), prints what it tried, and scores ANN_JSON with the best mean DSB
score. --save-params keeps the parameters used (with how they were tuned),
--params reuses such a file; --min-area fixes min_area in any of these.

A missing or malformed JSON or params file, a missing image folder or image,
or an output that cannot be written stops it with one line naming the file,
exit code 2, and nothing written.
"""
import argparse
import dataclasses
import json
import os.path as osp
import pickle
import sys
from typing import List, Tuple

import numpy as np
import torch
from tqdm import tqdm

from custom_modules.data.image_io import ImageReadError, read_image_file
from custom_modules.evaluation.metric import score_label_maps
from custom_modules.io.atomic import check_can_write, write_all_or_nothing
from custom_modules.models.classical import (ClassicalParams, DEFAULT_GRID, foreground,
                                             nuclei_bright, param_grid, segment_nuclei,
                                             split_foreground)
from custom_modules.structures.label_ops import masks_to_label_map
from custom_modules.structures.rle import coco_decode, coco_encode_label_map

Sample = Tuple[str, np.ndarray, np.ndarray]  # kind, bright-nuclei grey image, gt label map


def read_json(path: str):
    """A JSON file's content; ValueError naming the file when it cannot be read or parsed."""
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as err:
        raise ValueError(f'{path}: cannot read ({err.strerror})') from None
    except ValueError as err:
        raise ValueError(f'{path}: not JSON ({err})') from None


def read_coco(path: str) -> dict:
    """A data_prep COCO JSON; ValueError naming the file when it is not one."""
    coco = read_json(path)
    if not isinstance(coco, dict) or not isinstance(coco.get('images'), list):
        raise ValueError(f'{path}: not a COCO JSON of data_prep (no "images" list)')
    if any(not isinstance(im, dict) or not {'id', 'file_name'} <= set(im) for im in coco['images']):
        raise ValueError(f'{path}: an entry of "images" lacks id or file_name')
    return coco


def read_params(path: str) -> ClassicalParams:
    """Parameters from a --save-params file; ValueError naming the file when it is not one."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get('params'), dict):
        raise ValueError(f'{path}: not a classical params file (no "params" object)')
    try:
        return ClassicalParams.from_dict(data['params'])
    except (TypeError, ValueError) as err:
        raise ValueError(f'{path}: bad params ({err})') from None


def gt_label_map(shape, anns: list) -> np.ndarray:
    """Ground-truth label map of one image from its COCO annotations (overlaps: first wins)."""
    return masks_to_label_map((coco_decode(ann['segmentation']) for ann in anns), shape[:2])


def annotations_by_image(coco: dict) -> dict:
    """``{image_id: [annotation, ...]}``."""
    anns = {}
    for ann in coco.get('annotations', []):
        anns.setdefault(ann['image_id'], []).append(ann)
    return anns


def print_scores(title: str, scores: List[Tuple[str, float]]) -> None:
    """The mean score, then the mean per image kind."""
    print(f'{title} over {len(scores)} images: {np.mean([s for _, s in scores]):.4f}')
    for kind in sorted({k for k, _ in scores}):
        values = [s for k, s in scores if k == kind]
        print(f'  {kind}: {np.mean(values):.4f} ({len(values)} images)')


def load_samples(coco: dict, ann_file: str, img_dir: str, count, seed: int) -> List[Sample]:
    """Grey images and ground truths of ``count`` random images (all when None)."""
    images = coco['images']
    if count is not None and count < len(images):
        keep = np.sort(np.random.default_rng(seed).choice(len(images), count, replace=False))
        images = [images[i] for i in keep]
    anns, samples = annotations_by_image(coco), []
    for im in tqdm(images, desc='tuning images', file=sys.stderr):
        path = osp.join(img_dir, im['file_name'])
        try:
            img = read_image_file(path)
        except ImageReadError as err:
            raise ImageReadError(f'{err} (listed in {ann_file})') from None
        samples.append((im.get('kind', 'all'), nuclei_bright(img),
                        gt_label_map(img.shape, anns.get(im['id'], []))))
    return samples


def tune(samples: List[Sample], grid: List[ClassicalParams]) -> List[Tuple[ClassicalParams, dict]]:
    """Score every parameter set on ``samples``, best mean first (ties: grid order).

    Returns:
        ``[(params, {'all': mean, kind: mean, ...}), ...]``.
    """
    results, foregrounds = [], {}
    for params in tqdm(grid, desc='parameter sets', file=sys.stderr):
        if params.sigma not in foregrounds:  # the threshold depends on sigma only
            foregrounds = {params.sigma: [foreground(grey, params.sigma) for _, grey, _ in samples]}
        scores = [(kind, score_label_maps(gt, split_foreground(fg, params)).mean())
                  for (kind, _, gt), fg in zip(samples, foregrounds[params.sigma])]
        table = dict(all=float(np.mean([s for _, s in scores])))
        for kind in sorted({k for k, _ in scores}):
            table[kind] = float(np.mean([s for k, s in scores if k == kind]))
        results.append((params, table))
    return sorted(results, key=lambda r: -r[1]['all'])


def print_table(results: List[Tuple[ClassicalParams, dict]]) -> None:
    """The tuning results, one row per parameter set."""
    names = [f.name for f in dataclasses.fields(ClassicalParams)]
    kinds = list(results[0][1])
    print(' | '.join(names + kinds))
    for params, table in results:
        print(' | '.join([str(getattr(params, n)) for n in names] +
                         [f'{table[k]:.4f}' for k in kinds]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Otsu + distance-transform watershed baseline')
    parser.add_argument('ann_file', help='COCO JSON from data_prep/prepare_dsb.py')
    parser.add_argument('img_dir', help='folder file_name is relative to (both JSONs)')
    parser.add_argument('--out', help='write predictions (.pkl) for tools/export_rle.py')
    parser.add_argument('--min-area', type=int, help='smallest nucleus kept (px); fixes '
                        f'min_area (default {ClassicalParams().min_area} or the params file\'s)')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--params', help='JSON of parameters written by --save-params')
    source.add_argument('--tune', metavar='TRAIN_JSON',
                        help='labelled COCO JSON to tune the parameters on first')
    parser.add_argument('--tune-images', type=int, help='tune on this many random images')
    parser.add_argument('--seed', type=int, default=0, help='seed of --tune-images (default 0)')
    parser.add_argument('--save-params', help='write the parameters used (.json)')
    args = parser.parse_args(argv)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error('--out must be a .pkl or .pickle file')
    if args.save_params is not None and not args.save_params.endswith('.json'):
        parser.error('--save-params must be a .json file')
    if args.min_area is not None and args.min_area < 0:
        parser.error('--min-area must be >= 0')
    if args.tune_images is not None and (args.tune is None or args.tune_images < 1):
        parser.error('--tune-images needs --tune and must be >= 1')
    outputs = [p for p in (args.out, args.save_params) if p]
    fixed = {} if args.min_area is None else dict(min_area=args.min_area)
    try:
        if not osp.isdir(args.img_dir):
            raise ValueError(f'{args.img_dir}: no such image folder')
        check_can_write(outputs)
        coco = read_coco(args.ann_file)
        params = read_params(args.params) if args.params else ClassicalParams()
        params = dataclasses.replace(params, **fixed)
        saved = dict(params=params.to_dict())
        if args.tune:
            train = read_coco(args.tune)
            if not train.get('annotations'):
                raise ValueError(f'{args.tune}: no annotations to tune on')
            samples = load_samples(train, args.tune, args.img_dir, args.tune_images, args.seed)
            results = tune(samples, param_grid(dict(DEFAULT_GRID, **{k: [v] for k, v in
                                                                     fixed.items()})))
            print(f'tuned on {len(samples)} images of {args.tune} (seed {args.seed}):')
            print_table(results)
            params, table = results[0]
            print(f'best: {params}')
            saved = dict(params=params.to_dict(), tuned_on=args.tune, tune_images=len(samples),
                         seed=args.seed, tune_score=round(table['all'], 4))
    except (ValueError, OSError) as err:  # ImageReadError is a ValueError
        print(f'error: {err}; nothing written', file=sys.stderr)
        return 2
    anns = annotations_by_image(coco)
    scores, predictions = [], []
    for im in tqdm(coco['images'], desc='images', file=sys.stderr):
        path = osp.join(args.img_dir, im['file_name'])
        try:
            pred = segment_nuclei(read_image_file(path), params)
        except ImageReadError as err:
            print(f'error: {err} (listed in {args.ann_file}); nothing written', file=sys.stderr)
            return 2
        if 'annotations' in coco:
            gt = gt_label_map(pred.shape, anns.get(im['id'], []))
            scores.append((im.get('kind', 'all'), score_label_maps(gt, pred).mean()))
        rles = [dict(r, counts=r['counts'].encode('ascii'))
                for r in coco_encode_label_map(pred).values()]
        predictions.append(dict(img_path=path, img_id=im['id'], ori_shape=pred.shape,
                                pred_instances=dict(masks=rles, scores=torch.ones(len(rles)))))
    if scores:
        print_scores('classical baseline DSB score', scores)
    files = {}
    if args.out:
        files[args.out] = pickle.dumps(predictions)
    if args.save_params:
        files[args.save_params] = json.dumps(saved, indent=2) + '\n'
    try:
        write_all_or_nothing(files)
    except OSError as err:
        print(f'error: {err}; nothing was written', file=sys.stderr)
        return 2
    for path in files:
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
