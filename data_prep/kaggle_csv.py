"""Instance CSVs (run-length encoded masks) for ``prepare_dsb.py``.

Two CSV layouts are read, told apart by their header:

* Kaggle DSB2018: ``ImageId,EncodedPixels[,Height,Width]``, pixels numbered
  column-major (top to bottom, then left to right);
* Sartorius: ``id,annotation,width,height[,cell_type,...]``, pixels numbered
  row-major (left to right, then top to bottom).

A class per instance may come from a column (``--class-column``); see
:mod:`data_prep.classes` for categories. Runs are checked against the pixel
order (:func:`rle_order_problem`).
"""
from typing import Iterable, List, Optional, Tuple

import numpy as np

from custom_modules.data.image_io import ImageReadError, image_path_in
from custom_modules.structures.rle import (RLE_ORDERS, Runs, parse_kaggle, run_indices,
                                           to_column_major)
from data_prep.classes import InputError

# Our column name -> the layout's; the layout's default pixel order.
LAYOUTS = {
    'kaggle': ({'ImageId': 'ImageId', 'EncodedPixels': 'EncodedPixels', 'Height': 'Height',
                'Width': 'Width'}, 'column'),
    'sartorius': ({'ImageId': 'id', 'EncodedPixels': 'annotation', 'Height': 'height',
                   'Width': 'width'}, 'row'),
}
# The column a layout's class comes from when no --class-column is given.
DEFAULT_CLASS_COLUMNS = {'sartorius': 'cell_type'}
NO_CLASS = 'none'  # --class-column none: one class, whatever the layout
ORDER_CHECK_INSTANCES = 50  # instances per image looked at by rle_order_problem


def csv_layout(path: str, columns: Iterable[str]) -> str:
    """``'kaggle'`` or ``'sartorius'`` from a CSV header; InputError for neither."""
    columns = set(columns)
    if {'ImageId', 'EncodedPixels'} & columns or not {'id', 'annotation'} & columns:
        missing = {'ImageId', 'EncodedPixels'} - columns
        if missing:
            raise InputError(f'{path}: missing column(s) {sorted(missing)} (expected '
                             'ImageId,EncodedPixels[,Height,Width] or Sartorius '
                             'id,annotation,width,height)')
        return 'kaggle'
    missing = {'id', 'annotation', 'width', 'height'} - columns
    if missing:
        raise InputError(f'{path}: missing column(s) {sorted(missing)} of the Sartorius layout '
                         'id,annotation,width,height')
    return 'sartorius'


def class_column_of(layout: str, columns: Iterable[str],
                    class_column: Optional[str]) -> Optional[str]:
    """The column to read classes from: the one given; ``None`` for ``'none'``; without
    one, the layout's class column (:data:`DEFAULT_CLASS_COLUMNS`) where the CSV has it."""
    if class_column == NO_CLASS:
        return None
    if class_column is None and DEFAULT_CLASS_COLUMNS.get(layout) in set(columns):
        return DEFAULT_CLASS_COLUMNS[layout]
    return class_column


def read_rle_csv(path: str, images_dir: str, class_column: Optional[str] = None):
    """Parse an instance CSV.

    Args:
        path: the CSV (either layout).
        images_dir: where ``<id>/images/<id>.png`` or ``<id>.png`` are.
        class_column: the column holding each instance's class; ``None``: the
            layout's own (Sartorius ``cell_type``) where present; ``'none'``: no class.

    Returns:
        ``(layout, {ImageId: [image_path, shape_or_None, [(row, EncodedPixels, class)]]},
        class column)``; ``class`` is None without a class column.
    """
    import pandas as pd
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise InputError(f'{path}: cannot read CSV ({err})') from None
    layout = csv_layout(path, table.columns)
    names = LAYOUTS[layout][0]
    class_column = class_column_of(layout, table.columns, class_column)
    if class_column is not None and class_column not in table.columns:
        raise InputError(f'{path}: no class column {class_column!r} (columns: '
                         f'{", ".join(table.columns)})')
    if table.empty:
        raise InputError(f'{path}: CSV has no rows (only a header)')
    column = {ours: table[theirs].tolist() for ours, theirs in names.items() if theirs in table}
    image_ids, texts = column['ImageId'], column['EncodedPixels']
    classes = table[class_column].tolist() if class_column is not None else None
    has_size = 'Height' in column and 'Width' in column
    dup = (table.duplicated([names['ImageId'], names['EncodedPixels']])
           & (table[names['EncodedPixels']].str.strip() != ''))
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise InputError(f'{path}: row {row + 2}: duplicated {names["ImageId"]}/'
                         f'{names["EncodedPixels"]} pair ({names["ImageId"]} {image_ids[row]})')
    entries = {}
    for row, (image_id, text) in enumerate(zip(image_ids, texts)):
        where = f'{path}: row {row + 2} (ImageId {image_id})'
        if image_id not in entries:
            try:
                entries[image_id] = [image_path_in(images_dir, image_id), None, []]
            except ImageReadError as err:
                raise InputError(f'{where}: {err}') from None
        entry = entries[image_id]
        if has_size:
            try:
                shape = (int(column['Height'][row]), int(column['Width'][row]))
            except ValueError:
                raise InputError(f'{where}: {names["Height"]}/{names["Width"]} are not '
                                 'integers') from None
            if entry[1] not in (None, shape):
                raise InputError(f'{where}: size {shape} differs from an earlier row {entry[1]}')
            entry[1] = shape
        label = classes[row].strip() if classes is not None else ''
        if classes is not None and not label and text.strip():
            raise InputError(f'{where}: empty class in column {class_column!r}')
        entry[2].append((row, text, label or None))
    return layout, entries, class_column


def _box_fill(indices: np.ndarray, lines: int, order: str) -> float:
    """Pixels over bounding-box area of flat indices numbered in ``order``."""
    major, minor = np.divmod(indices, lines)
    rows, cols = (minor, major) if order == 'column' else (major, minor)
    return indices.size / ((np.ptp(rows) + 1) * (np.ptp(cols) + 1))


def rle_order_problem(raw_runs: List[Runs], shape: Tuple[int, int], order: str) -> Optional[str]:
    """Why runs seem numbered in the other pixel order, or None.

    Nuclei and cells are compact: decoded in the right order they fill a good
    share of their bounding boxes, in the wrong one they are torn into strips
    spread over the image. Up to ``ORDER_CHECK_INSTANCES`` of an image's
    instances (those of two runs or more) are decoded both ways; a median
    fill four times higher the other way is an error. Square images are left alone: there the wrong order is
    an exact transpose, which cannot be told from the runs.

    Args:
        raw_runs: each instance's runs as written (:func:`parse_kaggle`).
        shape: the image's ``(H, W)``.
        order: the order they are said to be in.
    """
    if shape[0] == shape[1]:
        return None
    other = RLE_ORDERS[1 - RLE_ORDERS.index(order)]
    lines = {'column': int(shape[0]), 'row': int(shape[1])}
    given, flipped = [], []
    for runs in raw_runs:
        if len(runs[0]) < 2:
            continue
        indices = run_indices(runs)
        given.append(_box_fill(indices, lines[order], order))
        flipped.append(_box_fill(indices, lines[other], other))
        if len(given) == ORDER_CHECK_INSTANCES:
            break
    if not given or np.median(flipped) <= 4 * np.median(given):
        return None
    return (f'the runs look numbered {other}-major, not {order}-major: read {order}-major its '
            f'instances fill {np.median(given):.0%} of their boxes (median), read {other}-major '
            f'{np.median(flipped):.0%}; use --rle-order {other}')


def parse_image_rows(rows: list, shape: Tuple[int, int], order: str, csv_path: str,
                     image_id: str) -> List[Runs]:
    """Column-major runs of one image's CSV rows, checking the pixel order.

    Args:
        rows: ``(row, EncodedPixels, class)`` from :func:`read_rle_csv`.
        shape: the image's ``(H, W)``.
        order: ``'column'`` or ``'row'``: how the CSV numbers pixels.
        csv_path: the CSV, for messages.
        image_id: the image, for messages.

    Raises:
        InputError: naming the CSV, the row or ImageId, and what is wrong.
    """
    raw = []
    for row, text, _ in rows:
        try:
            raw.append(parse_kaggle(text, shape))
        except ValueError as err:
            raise InputError(f'{csv_path}: row {row + 2} (ImageId {image_id}): {err}') from None
    problem = rle_order_problem(raw, shape, order)
    if problem:
        raise InputError(f'{csv_path}: ImageId {image_id}: {problem}')
    return [to_column_major(runs, shape, order) for runs in raw]
