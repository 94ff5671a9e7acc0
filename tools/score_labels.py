"""Score label images (``tools/predict.py``'s) against ground truth in the competition layout.

    python tools/score_labels.py LABELS_DIR GT_SRC

GT_SRC holds ``<ImageId>/masks/*.png``; every label image in LABELS_DIR named
after an ImageId is scored with the competition metric. Prints, per image and
overall, the nuclei found and the score.
"""
import argparse
import glob
import os
import sys

import numpy as np

from custom_modules.data.image_io import ImageReadError, image_name, read_mask_file
from custom_modules.evaluation.metric import score_label_maps
from custom_modules.io.exporters import read_label_image
from custom_modules.structures.label_ops import instances_to_label_map


def truth_label_map(gt_src: str, image_id: str, shape) -> np.ndarray:
    """The ground-truth label map of one ImageId (its mask PNGs; overlaps to the first).

    ``shape``: the size the masks must have (``None``: any).
    """
    paths = sorted(glob.glob(os.path.join(gt_src, image_id, 'masks', '*.png')))
    if not paths:
        raise ImageReadError(f'{gt_src}/{image_id}/masks: no mask PNGs')
    masks = np.stack([read_mask_file(p) for p in paths])
    if shape is not None and masks.shape[1:] != tuple(shape):
        raise ImageReadError(f'{gt_src}/{image_id}: masks are {masks.shape[1:]}, the label '
                             f'image {tuple(shape)}')
    return instances_to_label_map(masks)[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('labels_dir', help='label images (PNG/TIFF) named <ImageId>')
    parser.add_argument('gt_src', help='ground truth in the competition layout')
    args = parser.parse_args(argv)
    paths = sorted(p for p in glob.glob(os.path.join(args.labels_dir, '*'))
                   if p.lower().endswith(('.png', '.tif', '.tiff')))
    if not paths:
        print(f'error: {args.labels_dir}: no label images', file=sys.stderr)
        return 2
    scores = []
    print(f'{"image":16}{"truth":>7}{"found":>7}{"score":>8}')
    for path in paths:
        image_id = image_name(path)
        try:
            pred = read_label_image(path)
            truth = truth_label_map(args.gt_src, image_id, pred.shape)
        except ImageReadError as err:
            print(f'error: {err}', file=sys.stderr)
            return 2
        scores.append(float(score_label_maps(truth, pred).mean()))
        print(f'{image_id[:14]:16}{len(np.unique(truth)) - 1:7d}{len(np.unique(pred)) - 1:7d}'
              f'{scores[-1]:8.4f}')
    print(f'competition score over {len(scores)} images: {np.mean(scores):.4f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
