"""Classes and categories for ``prepare_dsb.py``.

A class per image comes from a mapping CSV ``image_id,class``
(``--class-map``), a class per instance from a CSV column (see
:mod:`data_prep.kaggle_csv`). Categories get ids 1..K in sorted name order,
or are taken from an existing COCO JSON (``--categories-from``) so that
separately prepared sets (train, test) agree. Without classes there is one
category, ``nucleus``.
"""
import json
from typing import Dict, Iterable, List, Optional

from data_prep.folds import read_csv_rows

DEFAULT_CATEGORIES = [{'id': 1, 'name': 'nucleus'}]


class InputError(ValueError):
    """Invalid input; the message names the file or row."""


def read_class_map(path: str) -> Dict[str, str]:
    """Read ``image_id,class``: the class of every instance of an image.

    Raises:
        InputError: an unreadable file, a missing column, no rows, an empty
            class or an image given two classes, naming the file and row.
    """
    rows = read_csv_rows(path, ('image_id', 'class'), 'class map', InputError)
    classes = {}
    for line, row in enumerate(rows, start=2):
        image_id, name = (row['image_id'] or '').strip(), (row['class'] or '').strip()
        if not image_id or not name:
            raise InputError(f'{path}: row {line}: empty image_id or class')
        if classes.get(image_id, name) != name:
            raise InputError(f'{path}: row {line}: image {image_id} is given class {name!r} '
                             f'and, earlier, {classes[image_id]!r}')
        classes[image_id] = name
    return classes


def image_classes(image_ids: List[str], class_map: Optional[Dict[str, str]],
                  path: Optional[str], required: bool) -> Dict[str, Optional[str]]:
    """Each image's class from a class map (all None without one).

    Raises:
        InputError: ``required`` and an image absent from the map, naming the map.
    """
    if class_map is None:
        return {i: None for i in image_ids}
    missing = [i for i in image_ids if i not in class_map]
    if missing and required:
        raise InputError(f'{path}: no class for ImageId {missing[0]} ({len(missing)} of '
                         f'{len(image_ids)} images are not listed)')
    return {i: class_map.get(i) for i in image_ids}


def read_categories(path: str) -> List[dict]:
    """The ``categories`` of a COCO JSON: unique int ids and unique names."""
    try:
        with open(path) as f:
            cats = json.load(f).get('categories')
    except (OSError, ValueError, AttributeError) as err:
        raise InputError(f'{path}: cannot read the COCO JSON ({err})') from None
    if not isinstance(cats, list) or not cats:
        raise InputError(f'{path}: no categories in the COCO JSON')
    try:
        ids, names = [int(c['id']) for c in cats], [str(c['name']) for c in cats]
    except (KeyError, TypeError, ValueError):
        raise InputError(f'{path}: a category lacks an integer id or a name') from None
    if len(set(ids)) < len(ids) or len(set(names)) < len(names):
        raise InputError(f'{path}: category ids or names repeat ({cats})')
    return [{'id': i, 'name': n} for i, n in zip(ids, names)]


def make_categories(names: Iterable[Optional[str]], fixed: Optional[List[dict]],
                    fixed_path: Optional[str], source: str, labelled: bool) -> List[dict]:
    """The categories of the output JSON.

    Args:
        names: the class of every instance or image (None: no class given).
        fixed: categories from ``--categories-from``, or None.
        fixed_path: their JSON, for messages.
        source: the file the classes came from, for messages.
        labelled: whether instances are written (they need a class when
            ``fixed`` has several categories).

    Returns:
        ``fixed``; else one ``nucleus`` category without classes; else ids
        1..K in sorted name order.
    """
    found = sorted({n for n in names if n is not None})
    if fixed is None:
        return [{'id': i, 'name': n} for i, n in enumerate(found, 1)] or DEFAULT_CATEGORIES
    known = {c['name'] for c in fixed}
    unknown = [n for n in found if n not in known]
    if unknown:
        raise InputError(f'{source}: class(es) {unknown} are not among the categories of '
                         f'{fixed_path} ({sorted(known)})')
    if labelled and not found and len(fixed) > 1:
        raise InputError(f'{source}: no class is given, but {fixed_path} has {len(fixed)} '
                         'categories (use --class-column or --class-map)')
    return fixed


def category_id(categories: List[dict], name: Optional[str]) -> int:
    """The id of class ``name`` (None: the only category)."""
    if name is None:
        return categories[0]['id']
    return next(c['id'] for c in categories if c['name'] == name)
