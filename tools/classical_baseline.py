"""Score the classical baseline (Otsu + watershed) on a data_prep JSON.

    python tools/classical_baseline.py ANN_JSON IMG_DIR [--out preds.pkl]

Prints the competition score (labelled JSON); --out writes predictions in the
format of tools/test.py --out, so tools/export_rle.py turns them into a CSV.
A missing or malformed JSON, a missing image folder or image, or an --out that
cannot be written stops it with one line naming the file, exit code 2, and
nothing written.
"""
import argparse
import json
import os.path as osp
import pickle
import sys

import numpy as np
import torch
from tqdm import tqdm

from custom_modules.atomic import check_can_write, write_atomic
from custom_modules.classical import segment_nuclei
from custom_modules.image_io import ImageReadError, read_image_file
from custom_modules.metric import score_label_maps
from custom_modules.rle import coco_decode, coco_encode_label_map


def read_coco(path: str) -> dict:
    """A data_prep COCO JSON; ValueError naming the file when it is not one."""
    try:
        with open(path) as f:
            coco = json.load(f)
    except OSError as err:
        raise ValueError(f'{path}: cannot read ({err.strerror})') from None
    except ValueError as err:
        raise ValueError(f'{path}: not JSON ({err})') from None
    if not isinstance(coco, dict) or not isinstance(coco.get('images'), list):
        raise ValueError(f'{path}: not a COCO JSON of data_prep (no "images" list)')
    if any(not isinstance(im, dict) or not {'id', 'file_name'} <= set(im) for im in coco['images']):
        raise ValueError(f'{path}: an entry of "images" lacks id or file_name')
    return coco


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Otsu + watershed nucleus baseline')
    parser.add_argument('ann_file', help='COCO JSON from data_prep/prepare_dsb.py')
    parser.add_argument('img_dir', help='folder file_name is relative to')
    parser.add_argument('--out', help='write predictions (.pkl) for tools/export_rle.py')
    parser.add_argument('--min-area', type=int, default=10, help='smallest nucleus kept (px)')
    args = parser.parse_args(argv)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error('--out must be a .pkl or .pickle file')
    if args.min_area < 0:
        parser.error('--min-area must be >= 0')
    try:
        if not osp.isdir(args.img_dir):
            raise ValueError(f'{args.img_dir}: no such image folder')
        check_can_write([args.out] if args.out else [])
        coco = read_coco(args.ann_file)
    except (ValueError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    anns = {}
    for ann in coco.get('annotations', []):
        anns.setdefault(ann['image_id'], []).append(ann)
    scores, predictions = [], []
    for im in tqdm(coco['images'], desc='images', file=sys.stderr):
        path = osp.join(args.img_dir, im['file_name'])
        try:
            pred = segment_nuclei(read_image_file(path), args.min_area)
        except ImageReadError as err:
            print(f'error: {err} (listed in {args.ann_file}); nothing written', file=sys.stderr)
            return 2
        if 'annotations' in coco:
            gt = np.zeros(pred.shape, np.int32)
            for k, ann in enumerate(anns.get(im['id'], []), start=1):
                gt[coco_decode(ann['segmentation'])] = k
            scores.append((im.get('kind', 'all'), score_label_maps(gt, pred).mean()))
        rles = [dict(r, counts=r['counts'].encode('ascii'))
                for r in coco_encode_label_map(pred).values()]
        predictions.append(dict(img_path=path, img_id=im['id'], ori_shape=pred.shape,
                                pred_instances=dict(masks=rles, scores=torch.ones(len(rles)))))
    if scores:
        print(f'classical baseline DSB score over {len(scores)} images: '
              f'{np.mean([s for _, s in scores]):.4f}')
        for kind in sorted({k for k, _ in scores}):
            values = [s for k, s in scores if k == kind]
            print(f'  {kind}: {np.mean(values):.4f} ({len(values)} images)')
    if args.out:
        try:
            write_atomic(args.out, pickle.dumps(predictions))
        except OSError as err:
            print(f'error: {err}; nothing was written', file=sys.stderr)
            return 2
        print(f'wrote {args.out}')
    return 0

if __name__ == '__main__':
    sys.exit(main())
