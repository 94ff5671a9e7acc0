"""The outputs of ``prepare_dsb.py``: COCO JSONs, fold JSONs and ``folds.csv``."""
import json
import os
from typing import Dict, List, Optional, Set

from custom_modules.io.atomic import write_all_or_nothing
from custom_modules.io.csv_cells import csv_text
from data_prep.folds import assign_folds, class_strata


def coco_dict(images: list, anns: list, labelled: bool, categories: List[dict]) -> dict:
    """Assemble a COCO dict; an images-only set has no ``annotations`` key."""
    out = dict(info=dict(description='DSB2018 nuclei, made by nucleiseg data_prep'),
               images=images, categories=categories)
    if labelled:
        out['annotations'] = anns
    return out


def output_paths(out_dir: str, labelled: bool, fold: int, types: bool = False) -> List[str]:
    """The files a run writes: full.json, then train/val JSONs and folds.csv if labelled,
    then ``train_types.json`` and ``val_types.json`` for a type-held-out split."""
    names = ['full.json']
    if labelled:
        names += [f'train_fold{fold}.json', f'val_fold{fold}.json', 'folds.csv']
    if types:
        names += ['train_types.json', 'val_types.json']
    return [os.path.join(out_dir, n) for n in names]


def subset(images: list, anns: list, keep, categories: List[dict]) -> str:
    """The COCO JSON text of the images for which ``keep(image)`` holds, with their annotations."""
    sub = [im for im in images if keep(im)]
    ids = {im['id'] for im in sub}
    return json.dumps(coco_dict(sub, [a for a in anns if a['image_id'] in ids], True, categories))


def write_outputs(args, images: list, anns: list, labelled: bool,
                  groups: Optional[Dict[str, str]], categories: List[dict],
                  with_folds: bool, held_out: Optional[Set[str]] = None) -> List[str]:
    """Write every output, or none of them (see ``custom_modules.io.atomic``).

    With several categories, folds are stratified by each image's main class
    too; without ``with_folds`` no fold is written. ``held_out`` (image ids)
    adds the type-held-out split: those images in ``val_types.json``, the
    others in ``train_types.json``.
    """
    types = labelled and held_out is not None
    paths = output_paths(args.out_dir, labelled and with_folds, args.fold, types)
    texts = [json.dumps(coco_dict(images, anns, labelled, categories))]
    if labelled and with_folds:
        strata = {im['image_id']: im['stratum'] for im in images}
        if len(categories) > 1:
            names = {im['id']: im['image_id'] for im in images}
            strata = class_strata(strata, [(names[a['image_id']], a['category_id']) for a in anns])
        folds = assign_folds([im['image_id'] for im in images], strata, args.folds, groups,
                             args.seed)
        for im in images:
            im['fold'] = folds[im['image_id']]
        texts.append(subset(images, anns, lambda im: im['fold'] != args.fold, categories))
        texts.append(subset(images, anns, lambda im: im['fold'] == args.fold, categories))
        texts.append(csv_text(('img_id', 'fold', 'stratum'),
                              ((im['image_id'], im['fold'], im['stratum']) for im in images)))
    if types:
        texts.append(subset(images, anns, lambda im: im['image_id'] not in held_out, categories))
        texts.append(subset(images, anns, lambda im: im['image_id'] in held_out, categories))
    return write_all_or_nothing(dict(zip(paths, texts)))
