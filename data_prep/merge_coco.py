"""Merge COCO files made by data_prep into one training set, ids renumbered.

A lab's few labelled images of its own type train best beside the DSB2018
training images (BENCHMARKS.md, "Held-out image types"); this writes the one
annotation file the training config takes::

    python data_prep/merge_coco.py data/generated/mine_plus_dsb.json \\
        data/generated/dsb/full.json=../shared/dsb2018/stage1_train \\
        data/generated/mine/full.json=/data/mine/stage1_train

``IN.json=IMG_DIR`` makes that file's image names absolute under ``IMG_DIR``
(the config's ``data_prefix.img`` then no longer matters for them); without it
they stay relative to the config's image folder. Image fields (kind, stratum,
group) are kept, so the stratum-balanced sampler sees every kind.
"""
import argparse
import json
import os
import sys
from typing import List, Optional, Tuple

from custom_modules.io.atomic import write_all_or_nothing
from data_prep.outputs import coco_dict


def read_coco(path: str) -> dict:
    """A data_prep COCO file, checked; ValueError naming the file otherwise."""
    try:
        with open(path) as f:
            coco = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f'{path}: cannot read a COCO JSON ({type(err).__name__}: {err})')
    if not isinstance(coco, dict) or not isinstance(coco.get('images'), list) \
            or not isinstance(coco.get('categories'), list):
        raise ValueError(f'{path}: not a COCO file (no images or categories list)')
    if not isinstance(coco.get('annotations'), list):
        raise ValueError(f'{path}: images only, no annotations: in a training set its '
                         'nuclei would be learnt as background')
    return coco


def merge(inputs: List[Tuple[str, Optional[str]]]) -> dict:
    """One COCO dict of every ``(json_path, image_dir or None)``; ids renumbered from 1.

    Raises:
        ValueError: a file that is not COCO, categories that differ from the
            first file's, an images-only file, or an image that two inputs both hold.
    """
    images, anns, seen, categories = [], [], {}, None
    for path, img_dir in inputs:
        coco = read_coco(path)
        cats = sorted((c['id'], c['name']) for c in coco['categories'])
        if categories is None:
            categories, first = coco['categories'], (path, cats)
        elif cats != first[1]:
            raise ValueError(f'{path}: its categories {cats} differ from {first[0]}\'s {first[1]}')
        new_id = {}
        for im in coco['images']:
            name = im['file_name']
            if img_dir is not None:
                name = os.path.abspath(os.path.join(img_dir, name))
            if name in seen:
                raise ValueError(f'{path}: image {name} is also in {seen[name]}')
            seen[name] = path
            new_id[im['id']] = len(images) + 1
            images.append(dict(im, id=len(images) + 1, file_name=name))
        for ann in coco['annotations']:
            if ann['image_id'] not in new_id:
                raise ValueError(f'{path}: annotation {ann.get("id")} names image '
                                 f'{ann["image_id"]}, which the file does not hold')
            anns.append(dict(ann, id=len(anns) + 1, image_id=new_id[ann['image_id']]))
    return coco_dict(images, anns, True, categories)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Merge COCO files into one training set')
    parser.add_argument('out', help='the merged COCO JSON to write')
    parser.add_argument('inputs', nargs='+', metavar='IN.json[=IMG_DIR]',
                        help='COCO files, each optionally with its image folder')
    args = parser.parse_args(argv)
    inputs = []
    for item in args.inputs:
        path, _, img_dir = item.partition('=')
        if img_dir and not os.path.isdir(img_dir):
            parser.error(f'{item}: no such image folder {img_dir}')
        inputs.append((path, img_dir or None))
    try:
        merged = merge(inputs)
        write_all_or_nothing({args.out: json.dumps(merged)})
    except (OSError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'{args.out}: {len(merged["images"])} images, {len(merged["annotations"])} nuclei '
          f'from {len(inputs)} files')
    return 0


if __name__ == '__main__':
    sys.exit(main())
