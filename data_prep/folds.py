"""Group-aware, stratified K-fold assignment."""
import csv
import random
from collections import Counter, defaultdict
from typing import Dict, Iterable, List, Optional, Tuple


def read_csv_rows(path: str, columns: Tuple[str, ...], what: str,
                  error: type = ValueError) -> List[Dict[str, str]]:
    """The rows of a small CSV that must have ``columns`` (the one reader of data_prep's CSVs).

    Raises:
        error: an unreadable file, a missing column or no rows, naming the file
            and ``what`` it should be.
    """
    try:
        with open(path, newline='') as f:
            reader = csv.DictReader(f)
            missing = set(columns) - set(reader.fieldnames or [])
            if missing:
                raise error(f'{path}: missing column(s) {sorted(missing)}; '
                            f'expected {",".join(columns)}')
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise error(f'{path}: cannot read the {what} ({err})') from None
    if not rows:
        raise error(f'{path}: CSV has no rows (only a header)')
    return rows


def read_groups(path: str) -> Dict[str, str]:
    """Read ``img_id,mosaic_idx[,...]``; an empty ``mosaic_idx`` means no group.

    Raises:
        ValueError: an unreadable file, a missing column or no rows, naming the file.
    """
    rows = read_csv_rows(path, ('img_id', 'mosaic_idx'), 'groups CSV')
    return {row['img_id']: row['mosaic_idx'].strip() for row in rows
            if row['mosaic_idx'] and row['mosaic_idx'].strip()}


def check_fold_count(image_ids: List[str], num_folds: int,
                     groups: Optional[Dict[str, str]] = None) -> None:
    """Raise ValueError unless the images form at least ``num_folds >= 2`` groups."""
    if num_folds < 2:
        raise ValueError(f'need at least 2 folds, got {num_folds}')
    groups = groups or {}
    count = len({('g', groups[i]) if i in groups else ('i', i) for i in image_ids})
    if count < num_folds:
        raise ValueError(f'{count} groups cannot fill {num_folds} folds')


def fold_problem(jobs: list, num_folds: int, groups: Optional[Dict[str, str]]) -> Optional[str]:
    """Why the images of ``jobs`` (dicts with ``image_id``) cannot be dealt into
    ``num_folds`` folds (fewer than 2 folds, too few groups), or None."""
    try:
        check_fold_count([job['image_id'] for job in jobs], num_folds, groups)
    except ValueError as err:
        return str(err)
    return None


def assign_folds(image_ids: List[str], strata: Dict[str, str], num_folds: int,
                 groups: Optional[Dict[str, str]] = None, seed: int = 0) -> Dict[str, int]:
    """Assign every image to one of ``num_folds`` folds.

    Images of one group always share a fold; groups are dealt out greedily,
    largest first, to the fold holding fewest images of the group's stratum
    (ties: fewest images overall), so every stratum spreads evenly.

    Args:
        image_ids: all images.
        strata: image id -> stratum (kind and size, say).
        num_folds: K >= 2.
        groups: image id -> group key; images not in it are their own group.
        seed: shuffles groups of equal size before dealing.

    Returns:
        image id -> fold index in ``0..K-1``.
    """
    check_fold_count(image_ids, num_folds, groups)
    groups = groups or {}
    members = defaultdict(list)
    for img_id in image_ids:
        members[('g', groups[img_id]) if img_id in groups else ('i', img_id)].append(img_id)
    keys = sorted(members)
    random.Random(seed).shuffle(keys)
    keys.sort(key=lambda k: -len(members[k]))
    per_stratum = [Counter() for _ in range(num_folds)]
    totals = [0] * num_folds
    folds = {}
    for key in keys:
        imgs = members[key]
        stratum = Counter(strata[i] for i in imgs).most_common(1)[0][0]
        best = min(range(num_folds), key=lambda f: (per_stratum[f][stratum], totals[f], f))
        for img_id in imgs:
            folds[img_id] = best
            per_stratum[best][strata[img_id]] += 1
        totals[best] += len(imgs)
    return folds


def class_strata(strata: Dict[str, str],
                 instance_classes: Iterable[Tuple[str, int]]) -> Dict[str, str]:
    """Strata refined by each image's most frequent class, so every fold gets its share.

    Args:
        strata: image id -> stratum.
        instance_classes: ``(image id, class)`` of every instance.

    Returns:
        image id -> ``<stratum>/<class>`` (ties: the smaller class); images
        without instances keep their stratum.
    """
    counts = defaultdict(Counter)
    for img_id, cls in instance_classes:
        counts[img_id][cls] += 1
    out = dict(strata)
    for img_id, per_class in counts.items():
        top = max(per_class.values())
        out[img_id] = f'{strata[img_id]}/{min(c for c, n in per_class.items() if n == top)}'
    return out
