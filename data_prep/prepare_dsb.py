"""Convert DSB2018 data (competition layout or Kaggle RLE CSV) into COCO JSON.

Examples::

    python data_prep/prepare_dsb.py ../shared/dsb2018/stage1_train data/dsb \\
        --groups ../shared/dsb2018/mosaic_groups.csv --folds 5 --fold 0 --types \\
        data_prep/image_types.csv --hold-out-types colour_tissue,grey_small_dense,grey_brightfield
    python data_prep/prepare_dsb.py stage1_train_labels.csv data/dsb --images stage1_train
    python data_prep/prepare_dsb.py stage1_test data/test        # images only
    python data_prep/prepare_dsb.py train.csv data/cells --images train --class-column cell_type

Classes (``--class-column`` of a CSV, ``--class-map`` image_id,class) become
the JSON's categories, ids 1..K in sorted name order (or those of
``--categories-from``); without them there is one category, ``nucleus``. A
Sartorius CSV's ``cell_type`` column is the class unless told otherwise
(``--class-column none``: one class).

Outputs in OUT_DIR: ``full.json`` (every image), and for labelled data
``train_fold<F>.json``, ``val_fold<F>.json`` and ``folds.csv`` (skipped, saying
why, when the images are too few for the folds); with ``--hold-out-types`` also
``train_types.json`` and ``val_types.json``: every image of those types (from
``--types``, see ``image_types.py``) in validation, the rest in training, no
mosaic split (:mod:`data_prep.type_split`). Nothing is written unless
every input is valid; an empty ``masks/`` folder is not, without ``--allow-empty``.
"""
import argparse
import os
import sys
from collections import Counter
from multiprocessing import Pool
from typing import List, Optional, Tuple

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from custom_modules.data.image_io import (IMAGE_KINDS, ImageReadError, image_kind, read_image_file,
                                          read_mask_file, size_bucket)
from custom_modules.io.atomic import check_can_write
from custom_modules.structures.rle import RLE_ORDERS, coco_encode_label_map, label_map_from_runs
from data_prep.classes import (InputError, category_id, image_classes, make_categories,
                               read_categories, read_class_map)
from data_prep.folds import fold_problem, read_groups
from data_prep.kaggle_csv import DEFAULT_CLASS_COLUMNS, LAYOUTS, NO_CLASS, parse_image_rows, read_rle_csv
from data_prep.outputs import output_paths, write_outputs
from data_prep.type_split import held_out_images, read_types, split_summary


def scan_layout(src: str, images_only: bool) -> Tuple[List[str], bool]:
    """List ImageIds of a competition-layout folder and whether it has masks."""
    try:
        names = sorted(os.listdir(src))
    except OSError as err:
        raise InputError(f'{src}: cannot list folder ({err.strerror})') from None
    ids, seen, with_masks = [], {}, []
    for name in names:
        folder = os.path.join(src, name)
        if name.startswith('.') or not os.path.isdir(folder):
            continue  # .DS_Store, .ipynb_checkpoints/ and other hidden entries
        if name.lower() in seen:
            raise InputError(f'{folder}: duplicated ImageId (also {seen[name.lower()]})')
        seen[name.lower()] = folder
        if not os.path.isdir(os.path.join(folder, 'images')):
            raise InputError(f'{folder}: missing images/ folder')
        ids.append(name)
        with_masks.append(os.path.isdir(os.path.join(folder, 'masks')))
    if not ids:
        raise InputError(f'{src}: no <ImageId>/images/ folders found')
    labelled = any(with_masks) and not images_only
    if labelled and not all(with_masks):
        missing = ids[with_masks.index(False)]
        raise InputError(f'{os.path.join(src, missing)}: no masks/ folder, while other images have one '
                         '(use --images-only to ignore masks)')
    return ids, labelled


def process_image(job) -> Tuple[dict, list, Counter]:
    """Read one image and its instances; return image record, annotations, counts."""
    image_id, img_path, rel_path = job['image_id'], job['path'], job['file_name']
    mask_paths, csv_rows, csv_path = job.get('masks'), job.get('rows'), job.get('csv')
    img = read_image_file(img_path)
    h, w = img.shape[:2]
    if job.get('shape') not in (None, (h, w)):
        swapped = ' (swapped?)' if job['shape'] == (w, h) else ''
        raise InputError(f'{csv_path}: ImageId {image_id}: Height/Width {job["shape"]} differ from '
                         f'the image {img_path} ({h}x{w}){swapped}')
    stats = Counter(images=1)
    record = dict(file_name=rel_path, height=h, width=w, image_id=image_id,
                  kind=image_kind(img), size=size_bucket(h, w), channels=1 if img.ndim == 2 else img.shape[2],
                  bit_depth=8 * img.dtype.itemsize)
    record['stratum'] = f"{record['kind']}/{record['size']}"
    if mask_paths is None and csv_rows is None:
        return record, [], stats
    label = np.zeros((h, w), dtype=np.int32)
    if mask_paths is not None:
        for k, path in enumerate(mask_paths, start=1):
            mask = read_mask_file(path)
            if mask.shape != (h, w):
                raise ImageReadError(f'{path}: mask is {mask.shape[0]}x{mask.shape[1]}, '
                                     f'its image {img_path} is {h}x{w}')
            stats['mask files'] += 1
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            if rows.size == 0:
                stats['empty masks dropped'] += 1
                continue
            sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
            sub, lab = mask[sl], label[sl]
            clash = sub & (lab != 0)
            if clash.any():
                stats['overlapping pixels resolved'] += int(clash.sum())
            lab[sub & (lab == 0)] = k
    else:
        runs = parse_image_rows(csv_rows, (h, w), job['order'], csv_path, image_id)
        stats['mask files'] += len(runs)
        stats['empty masks dropped'] += sum(len(r[0]) == 0 for r in runs)
        label, contested = label_map_from_runs((h, w), runs)
        stats['overlapping pixels resolved'] += contested
    areas = np.bincount(label.ravel(), minlength=label.max() + 1)
    boxes = ndimage.find_objects(label)
    anns = []
    for lab, rle in coco_encode_label_map(label).items():
        ys, xs = boxes[lab - 1]
        cat = job['category_id'] if csv_rows is None else csv_rows[lab - 1][2]
        cat = job.get('kind_categories', {}).get(record['kind'], cat)  # --class-by-kind
        anns.append(dict(category_id=cat, segmentation=rle, area=int(areas[lab]), iscrowd=0,
                         bbox=[int(xs.start), int(ys.start), int(xs.stop - xs.start),
                               int(ys.stop - ys.start)]))
    given = (len(mask_paths) if mask_paths is not None else len(csv_rows)) - stats['empty masks dropped']
    stats['masks emptied by overlap'] = given - len(anns)
    stats['nuclei'] = len(anns)
    return record, anns, stats


def build_jobs(args) -> Tuple[list, bool, List[dict]]:
    """Describe one job per image and the categories, validating the layout first."""
    fixed = read_categories(args.categories_from) if args.categories_from else None
    jobs, labelled, cats = build_source_jobs(args, fixed)
    if args.class_by_kind:  # the class is known once the image is read
        cats = make_categories(IMAGE_KINDS, fixed, args.categories_from, 'image kinds', labelled)
        for job in jobs:
            job['kind_categories'] = {c['name']: c['id'] for c in cats}
    return jobs, labelled, cats


def build_source_jobs(args, fixed: Optional[List[dict]]) -> Tuple[list, bool, List[dict]]:
    """One job per image and the categories of the source's classes (``fixed``: given ones)."""
    class_map = read_class_map(args.class_map) if args.class_map else None
    source = args.class_map or args.src
    if os.path.isfile(args.src):
        if not args.images:
            raise InputError(f'{args.src}: a CSV source needs --images DIR')
        given = args.class_column or (NO_CLASS if args.class_map or args.class_by_kind else None)
        layout, entries, column = read_rle_csv(args.src, args.images, given)
        if given is None and column is not None:
            print(f'{args.src}: {layout} layout: the class of each instance is its {column!r} '
                  'column (--class-column none for one class)')
        per_image = image_classes(list(entries), class_map, args.class_map, required=True)
        for image_id, entry in entries.items():
            entry[2] = [(r, t, per_image[image_id] or c) for r, t, c in entry[2]]
        cats = make_categories((c for e in entries.values() for _, _, c in e[2]), fixed,
                               args.categories_from, source, labelled=True)
        order = args.rle_order or LAYOUTS[layout][1]
        return [dict(image_id=i, path=p, file_name=os.path.relpath(p, args.images), shape=shape,
                     rows=[(r, t, category_id(cats, c)) for r, t, c in rows], csv=args.src,
                     order=order) for i, (p, shape, rows) in sorted(entries.items())], True, cats
    if args.class_column not in (None, NO_CLASS) or args.rle_order:
        raise InputError(f'{args.src}: --class-column and --rle-order need a CSV source, '
                         'not a folder (use --class-map)')
    ids, labelled = scan_layout(args.src, args.images_only)
    per_image = image_classes(ids, class_map, args.class_map, required=labelled)
    cats = make_categories(per_image.values(), fixed, args.categories_from, source, labelled)
    jobs = []
    for img_id in ids:
        rel = os.path.join(img_id, 'images', img_id + '.png')
        if not os.path.isfile(os.path.join(args.src, rel)):
            raise InputError(f'{os.path.join(args.src, img_id, "images")}: missing {img_id}.png')
        masks = None
        if labelled:
            mdir = os.path.join(args.src, img_id, 'masks')
            masks = [os.path.join(mdir, m) for m in sorted(os.listdir(mdir))
                     if m.lower().endswith('.png') and not m.startswith('.')]
            if not masks and not args.allow_empty:
                raise InputError(f'{mdir}: masks/ folder without mask PNGs (use --allow-empty '
                                 'to keep images without nuclei)')
        jobs.append(dict(image_id=img_id, path=os.path.join(args.src, rel), file_name=rel,
                         masks=masks, category_id=category_id(cats, per_image[img_id])))
    return jobs, labelled, cats


def parse_args(argv: Optional[list] = None):
    parser = argparse.ArgumentParser(
        description='DSB2018 competition layout or Kaggle RLE CSV -> COCO instance JSON with folds.')
    parser.add_argument('src', help='folder in the competition layout (<ImageId>/images/<ImageId>.png, '
                        '<ImageId>/masks/*.png), or a CSV: Kaggle ImageId,EncodedPixels'
                        '[,Height,Width] or Sartorius id,annotation,width,height')
    parser.add_argument('out_dir', help='output folder for full.json, train/val_fold<F>.json, folds.csv')
    parser.add_argument('--images', help='image folder for a CSV source (<id>/images/<id>.png or <id>.png); '
                        'file_name in the JSON is relative to it')
    parser.add_argument('--groups', help='CSV img_id,mosaic_idx: images of one mosaic share a fold '
                        '(default: each image is its own group)')
    parser.add_argument('--folds', type=int, default=5, help='number of folds K (default 5)')
    parser.add_argument('--fold', type=int, default=0, help='fold written as val_fold<F>.json (default 0)')
    parser.add_argument('--types', metavar='FILE', help='CSV image_id,type (data_prep/image_types.py '
                        'writes it) for --hold-out-types')
    parser.add_argument('--hold-out-types', metavar='TYPE[,TYPE...]', help='also write '
                        'train_types.json / val_types.json: these types in validation, the rest in training')
    parser.add_argument('--seed', type=int, default=0, help='seed for the fold assignment (default 0)')
    parser.add_argument('--images-only', action='store_true',
                        help='ignore masks and write an images-only JSON for inference')
    parser.add_argument('--class-column', metavar='NAME',
                        help="the CSV source's column holding each instance's class (e.g. "
                        f"cell_type); default: the Sartorius layout's "
                        f"{DEFAULT_CLASS_COLUMNS['sartorius']} column where present; "
                        f"'{NO_CLASS}': one class")
    parser.add_argument('--class-map', metavar='FILE',
                        help='CSV image_id,class: one class for all instances of an image')
    parser.add_argument('--class-by-kind', action='store_true',
                        help=f"the image's kind ({', '.join(IMAGE_KINDS)}) as the class of its "
                        'nuclei, as the DSB2018 solutions stratified them')
    parser.add_argument('--categories-from', metavar='JSON',
                        help="use this COCO JSON's categories (ids and names), e.g. the training "
                        "set's full.json for a test set (default: ids 1..K in sorted name order)")
    parser.add_argument('--rle-order', choices=RLE_ORDERS,
                        help="how the CSV numbers pixels: 'column' (top to bottom first; default "
                        "for ImageId,EncodedPixels) or 'row' (left to right first; default for "
                        'Sartorius id,annotation); a wrong order is refused where it shows')
    parser.add_argument('--allow-empty', action='store_true',
                        help='keep images whose masks/ folder holds no mask (images without '
                        'nuclei); without it such a folder is refused as a missing one is')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                        help='worker processes (default: all cores)')
    args = parser.parse_args(argv)
    if args.folds < 1:
        parser.error('--folds must be at least 1')
    if not 0 <= args.fold < args.folds:
        parser.error(f'--fold must be in 0..{args.folds - 1}')
    if sum(map(bool, (args.class_column not in (None, NO_CLASS), args.class_map,
                      args.class_by_kind))) > 1:
        parser.error('give one of --class-column, --class-map, --class-by-kind')
    if bool(args.types) != bool(args.hold_out_types):
        parser.error('--types and --hold-out-types go together')
    return args


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    try:  # everything that can be checked before reading an image
        groups = read_groups(args.groups) if args.groups else None
        jobs, labelled, categories = build_jobs(args)
        folds_skipped = labelled and fold_problem(jobs, args.folds, groups)
        types = read_types(args.types) if args.types and labelled else None
        held_out = types and held_out_images(types, args.types, args.hold_out_types.split(','),
                                             [job['image_id'] for job in jobs], groups)
        check_can_write(output_paths(args.out_dir, labelled and not folds_skipped, args.fold, bool(types)))
    except (InputError, ValueError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        print('nothing was written', file=sys.stderr)
        return 2
    try:
        images, anns, totals = [], [], Counter()
        with Pool(max(1, args.workers)) as pool:
            results = pool.imap(process_image, jobs, chunksize=4)
            for img_idx, (record, img_anns, stats) in enumerate(
                    tqdm(results, total=len(jobs), desc='images', unit='img', file=sys.stderr), 1):
                images.append(dict(id=img_idx, **record))
                for ann in img_anns:
                    anns.append(dict(id=len(anns) + 1, image_id=img_idx, **ann))
                totals += stats
        written = write_outputs(args, images, anns, labelled, groups, categories,
                                not folds_skipped, held_out)
    except (InputError, ImageReadError, ValueError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        print('nothing was written', file=sys.stderr)
        return 2
    kinds = Counter(im['kind'] for im in images)
    print(f"images: {len(images)} ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
    if labelled:
        print(f"nuclei: {len(anns)} from {totals['mask files']} masks")
        if len(categories) > 1:
            per_cat = Counter(a['category_id'] for a in anns)
            print('classes: ' + ', '.join(f"{c['id']} {c['name']} {per_cat[c['id']]}"
                                          for c in categories))
        sizes = Counter(im.get('fold') for im in images)
        print(f'folds skipped: {folds_skipped}; only full.json is written' if folds_skipped else
              f"folds: {args.folds} ({', '.join(str(sizes[f]) for f in range(args.folds))} "
              f'images), val fold {args.fold}')
        print(f"fixes: {totals['empty masks dropped']} empty masks dropped, "
              f"{totals['overlapping pixels resolved']} overlapping pixels given to the first mask, "
              f"{totals['masks emptied by overlap']} masks emptied by overlap dropped")
        if types:
            print('\n'.join(split_summary(images, anns, types, held_out)))
    else:
        print('no masks: images-only JSON for inference')
    for path in written:
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
