"""Group DSB-layout images into image types (acquisition styles) and write them as a CSV.

Example (``full.json`` as ``prepare_dsb.py`` writes it; masks come from its RLEs)::

    python data_prep/image_types.py data/generated/dsb/full.json ../shared/dsb2018/stage1_train \\
        data_prep/image_types.csv --groups ../shared/dsb2018/mosaic_groups.csv

Per image cheap features are measured (size, kind, background and nucleus
brightness, contrast, median nucleus diameter, nuclei, coverage, background
texture, saturation, hue); then each mosaic group (or single image) gets one
type by fixed rules on its tiles' median features (:func:`type_of`), so the
tiles of a mosaic share a type. The thresholds were set by looking at contact
sheets of the images (the two colour styles differ in background, the
fluorescence ones in nucleus size, count and background offset); they are
rules, not a fitted model, so the table is recomputed exactly. On the 563
stage-1 images (images, nuclei, median diameter in px)::

    colour_tissue       54   2073  29.9   H&E-like tissue sections
    colour_cells        37   1861  20.5   purple-stained cells on a light slide
    grey_brightfield    14   1168  16.8   bright-field cytology
    grey_small_dense    38   3454  10.4   many small packed nuclei (fluorescence)
    grey_large          99   2409  47.8   large nuclei, high magnification
    grey_medium         81   7483  27.2   medium nuclei
    grey_small_offset  103   2386  11.3   small sparse nuclei, grey background offset
    grey_small_dark    137   3301  14.2   small sparse dim nuclei, black background

``prepare_dsb.py --types FILE --hold-out-types ...`` reads the table.
"""
import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from multiprocessing import Pool
from typing import Dict, List, Optional

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from custom_modules.io.atomic import check_can_write, write_all_or_nothing
from custom_modules.io.csv_cells import csv_text
from custom_modules.data.image_io import ImageReadError, image_kind, read_image_file, read_mask_file
from custom_modules.data.intensity import to_8bit
from data_prep.classes import InputError
from data_prep.folds import read_groups

FEATURES = ('height', 'width', 'kind', 'background', 'foreground', 'contrast', 'nuclei',
            'median_diameter', 'coverage', 'texture', 'saturation', 'hue')
COLUMNS = ('image_id', 'type', 'group') + FEATURES
# The types, in the order the rules of type_of try them, and what the images look like.
TYPES = {
    'colour_tissue': 'colour, H&E-like tissue sections: purple nuclei in pink/lilac tissue',
    'colour_cells': 'colour bright-field, purple-stained round cells on a light background',
    'grey_brightfield': 'grey bright-field cytology: small dark nuclei in cells on a bright background',
    'grey_small_dense': 'grey fluorescence, many small packed nuclei (confluent cells, tissue, '
                        'embryos)',
    'grey_large': 'grey fluorescence, large nuclei (high magnification), often dim',
    'grey_medium': 'grey fluorescence, medium nuclei',
    'grey_small_offset': 'grey fluorescence, small sparse nuclei, grey background offset',
    'grey_small_dark': 'grey fluorescence, small sparse dim nuclei, black background',
}
LIGHT_BACKGROUND = 188  # colour: tissue sections below, cells on a light slide above
LARGE, MEDIUM = 38.0, 22.0  # median nucleus diameter (px) of large and medium nuclei
DENSE = 60  # nuclei in an image of small nuclei that make it dense
OFFSET = 9  # background (grey level) above which fluorescence has an offset


def type_of(f: Dict[str, object]) -> str:
    """The type of an image (or mosaic group) from its features (see :data:`TYPES`)."""
    if f['kind'] == 'colour':
        return 'colour_tissue' if f['background'] < LIGHT_BACKGROUND else 'colour_cells'
    if f['kind'] == 'grey_bright':
        return 'grey_brightfield'
    if f['median_diameter'] >= LARGE:
        return 'grey_large'
    if f['median_diameter'] >= MEDIUM:
        return 'grey_medium'
    if f['nuclei'] >= DENSE:
        return 'grey_small_dense'
    return 'grey_small_offset' if f['background'] > OFFSET else 'grey_small_dark'


def group_types(rows: List[Dict[str, object]], groups: Dict[str, str]) -> Dict[str, str]:
    """``{image_id: type}``: each mosaic group typed by its tiles' median features
    (kind: the most common, ties the first in name order), so tiles share a type."""
    members = defaultdict(list)
    for row in rows:
        members[groups.get(row['image_id'], '/' + row['image_id'])].append(row)
    out = {}
    for tiles in members.values():
        kinds = Counter(t['kind'] for t in tiles)
        f = dict(kind=min(kinds, key=lambda k: (-kinds[k], k)))
        for key in ('background', 'median_diameter', 'nuclei'):
            f[key] = float(np.median([t[key] for t in tiles]))
        for t in tiles:
            out[t['image_id']] = type_of(f)
    return out


def measure(job) -> Dict[str, object]:
    """The features of one image (``job``: image id, path, its annotations' COCO RLEs)."""
    image_id, path, rles = job
    img = to_8bit(read_image_file(path))
    kind = image_kind(img)
    bgr = img[:, :, :3] if img.ndim == 3 and img.shape[2] >= 3 else np.repeat(
        img.reshape(img.shape[:2] + (-1, ))[:, :, :1], 3, 2)
    grey = cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    fg = np.zeros((h, w), bool)
    if rles:
        fg = mask_utils.decode(mask_utils.merge([dict(r, counts=r['counts'].encode('ascii'))
                                                 for r in rles])).astype(bool)
    areas = np.asarray([mask_utils.area(dict(r, counts=r['counts'].encode('ascii')))
                        for r in rles], float)
    bg_px = grey[~fg] if (~fg).any() else grey.ravel()
    fg_px = grey[fg] if fg.any() else grey.ravel()
    hsv = cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2HSV)
    hue = hsv[:, :, 0][fg] if fg.any() else hsv[:, :, 0].ravel()
    background, foreground = float(np.median(bg_px)), float(np.median(fg_px))
    return dict(image_id=image_id, height=h, width=w, kind=kind, background=round(background, 1),
                foreground=round(foreground, 1),
                contrast=round(abs(foreground - background) / 255, 3), nuclei=len(rles),
                median_diameter=round(float(np.median(np.sqrt(4 * areas / np.pi))), 1) if rles else 0.0,
                coverage=round(float(fg.mean()), 3),
                # texture: the background's 10-90 % spread (flat in fluorescence, grainy in tissue)
                texture=round(float(np.percentile(bg_px, 90) - np.percentile(bg_px, 10)) / 255, 3),
                saturation=round(float(hsv[:, :, 1].mean()) / 255, 3),
                hue=round(float(np.median(hue)) * 2, 1) if kind == 'colour' else 0.0)


def read_jobs(coco_path: str, images: str) -> List[tuple]:
    """One ``(image id, path, RLEs)`` per image of a COCO JSON written by prepare_dsb.py.

    Raises:
        InputError: an unreadable JSON or one without annotations, naming it.
    """
    try:
        with open(coco_path) as f:
            coco = json.load(f)
        per_image = {im['id']: [] for im in coco['images']}
        for ann in coco['annotations']:
            per_image[ann['image_id']].append(ann['segmentation'])
        jobs = [(im['image_id'], os.path.join(images, im['file_name']), per_image[im['id']])
                for im in sorted(coco['images'], key=lambda im: im['image_id'])]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f'{coco_path}: cannot read a labelled COCO JSON of prepare_dsb.py '
                         f'({type(err).__name__}: {err})') from None
    missing = [p for _, p, _ in jobs if not os.path.isfile(p)]
    if missing:
        raise InputError(f'{coco_path}: image {missing[0]} not found under {images} '
                         f'({len(missing)} missing)')
    return jobs


def summary(rows: List[Dict[str, object]], types: Dict[str, str]) -> List[str]:
    """One line per type: images, nuclei, median nucleus diameter, an example, description."""
    lines = [f'{"type":18} {"images":>6} {"nuclei":>6} {"diam":>5}  example']
    for name, text in TYPES.items():
        sub = [r for r in rows if types[r['image_id']] == name]
        if sub:
            diam = float(np.median([r['median_diameter'] for r in sub]))
            lines.append(f'{name:18} {len(sub):6d} {sum(r["nuclei"] for r in sub):6d} {diam:5.1f}  '
                         f'{sub[0]["image_id"][:12]}  {text}')
    return lines


def parse_args(argv: Optional[list] = None):
    parser = argparse.ArgumentParser(description='Group DSB images into image types (CSV).')
    parser.add_argument('coco', help="prepare_dsb.py's full.json of the images (masks as RLE)")
    parser.add_argument('images', help="the folder its file_name entries are relative to")
    parser.add_argument('out', help='output CSV: image_id, type, group, features')
    parser.add_argument('--groups', help='CSV img_id,mosaic_idx: tiles of a mosaic share a type')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                        help='worker processes (default: all cores)')
    return parser.parse_args(argv)


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    try:
        groups = read_groups(args.groups) if args.groups else {}
        jobs = read_jobs(args.coco, args.images)
        check_can_write([args.out])
    except (InputError, ValueError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    try:
        with Pool(max(1, args.workers)) as pool:
            rows = pool.map(measure, jobs, chunksize=8)
    except (ImageReadError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    types = group_types(rows, groups)
    table = ((r['image_id'], types[r['image_id']], groups.get(r['image_id'], ''),
              *(r[k] for k in FEATURES)) for r in rows)
    write_all_or_nothing({args.out: csv_text(COLUMNS, table)})
    print('\n'.join(summary(rows, types)))
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
