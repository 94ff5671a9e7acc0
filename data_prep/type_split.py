"""The type-held-out split of ``prepare_dsb.py``: whole image types in validation.

The types file is the CSV ``data_prep/image_types.py`` writes (columns
``image_id,type``, others ignored). Every image of a held-out type goes to
validation, every other image to training; a mosaic group (``--groups``)
whose tiles have different types is refused, so no mosaic straddles.
"""
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Set

from data_prep.classes import InputError
from data_prep.folds import read_csv_rows


def read_types(path: str) -> Dict[str, str]:
    """``{image_id: type}`` from a types CSV.

    Raises:
        InputError: an unreadable file, a missing column, no rows, an empty
            type or an image listed twice, naming the file and row.
    """
    rows = read_csv_rows(path, ('image_id', 'type'), 'types CSV', InputError)
    types = {}
    for line, row in enumerate(rows, start=2):
        image_id, name = (row['image_id'] or '').strip(), (row['type'] or '').strip()
        if not image_id or not name:
            raise InputError(f'{path}: row {line}: empty image_id or type')
        if image_id in types:
            raise InputError(f'{path}: row {line}: image {image_id} is listed twice')
        types[image_id] = name
    return types


def held_out_images(types: Dict[str, str], path: str, hold_out: List[str],
                    image_ids: List[str], groups: Optional[Dict[str, str]]) -> Set[str]:
    """The validation images of a type-held-out split, checked before any image is read.

    Args:
        types: ``{image_id: type}`` (:func:`read_types`).
        path: the types CSV, for messages.
        hold_out: the type names held out.
        image_ids: every image of the source.
        groups: image id -> mosaic group, or None.

    Raises:
        InputError: an unknown type, an image without a type, a mosaic group
            of several types, or an empty side, naming the types file.
    """
    known = sorted(set(types.values()))
    unknown = [t for t in hold_out if t not in known]
    if unknown:
        raise InputError(f'{path}: unknown type(s) {unknown}; the types are {known}')
    missing = [i for i in image_ids if i not in types]
    if missing:
        raise InputError(f'{path}: no type for ImageId {missing[0]} ({len(missing)} of '
                         f'{len(image_ids)} images are not listed)')
    by_group = defaultdict(set)
    for img_id in image_ids:
        if groups and img_id in groups:
            by_group[groups[img_id]].add(types[img_id])
    mixed = sorted(g for g, names in by_group.items() if len(names & set(hold_out)) and len(names) > 1)
    if mixed:
        raise InputError(f'{path}: mosaic group {mixed[0]} has tiles of types '
                         f'{sorted(by_group[mixed[0]])}; a held-out type would split it')
    val = {i for i in image_ids if types[i] in hold_out}
    if not val or len(val) == len(image_ids):
        raise InputError(f'{path}: holding out {hold_out} leaves '
                         f'{"no validation" if not val else "no training"} image')
    return val


def split_summary(images: list, anns: list, types: Dict[str, str], val: Set[str]) -> List[str]:
    """One line per type: its side, images and nuclei (``images``: COCO records)."""
    per_image = Counter(a['image_id'] for a in anns)
    counts = defaultdict(Counter)
    for im in images:
        counts[types[im['image_id']]]['images'] += 1
        counts[types[im['image_id']]]['nuclei'] += per_image[im['id']]
    lines = []
    for side, held in (('val', True), ('train', False)):
        names = sorted(t for t in counts if (t in {types[i] for i in val}) == held)
        total = sum((counts[t] for t in names), Counter())
        lines.append(f"types {side}: {total['images']} images, {total['nuclei']} nuclei")
        lines += [f"  {t}: {counts[t]['images']} images, {counts[t]['nuclei']} nuclei" for t in names]
    return lines
