"""Score the classical baseline (Otsu + watershed) on a data_prep JSON.

    python tools/classical_baseline.py ANN_JSON IMG_DIR [--out preds.pkl]

Prints the competition score (labelled JSON); --out writes predictions in the
format of tools/test.py --out, so tools/export_rle.py turns them into a CSV.
"""
import argparse
import json
import os
import os.path as osp
import pickle
import sys

import numpy as np
import torch
from tqdm import tqdm

from custom_modules.classical import segment_nuclei
from custom_modules.image_io import read_image_file
from custom_modules.metric import score_label_maps
from custom_modules.rle import coco_decode, coco_encode_label_map


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Otsu + watershed nucleus baseline')
    parser.add_argument('ann_file', help='COCO JSON from data_prep/prepare_dsb.py')
    parser.add_argument('img_dir', help='folder file_name is relative to')
    parser.add_argument('--out', help='write predictions (.pkl) for tools/export_rle.py')
    parser.add_argument('--min-area', type=int, default=10, help='smallest nucleus kept (px)')
    args = parser.parse_args(argv)
    with open(args.ann_file) as f:
        coco = json.load(f)
    anns = {}
    for ann in coco.get('annotations', []):
        anns.setdefault(ann['image_id'], []).append(ann)
    scores, predictions = [], []
    for im in tqdm(coco['images'], desc='images', file=sys.stderr):
        path = osp.join(args.img_dir, im['file_name'])
        pred = segment_nuclei(read_image_file(path), args.min_area)
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
        with open(args.out + '.tmp', 'wb') as f:
            pickle.dump(predictions, f)
        os.replace(args.out + '.tmp', args.out)
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
