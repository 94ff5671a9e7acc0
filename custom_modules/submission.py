"""Kaggle submission rows from predictions, and the checks they must pass."""
import os.path as osp
from typing import Dict, Iterable, List, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from .postprocess import instances_to_label_map
from .rle import encode_label_map, parse_kaggle, run_indices

Row = Tuple[str, str, float]  # ImageId, EncodedPixels, score (nan for an empty row)


def decode_prediction_masks(pred: dict, shape: Tuple[int, int]) -> np.ndarray:
    """``N x H x W`` masks of a dumped prediction (RLE list, tensor or array)."""
    masks = pred.get('masks', [])
    if isinstance(masks, list):
        if not masks:
            return np.zeros((0, ) + tuple(shape), bool)
        return mask_utils.decode(masks).transpose(2, 0, 1).astype(bool)
    if hasattr(masks, 'numpy'):
        masks = masks.cpu().numpy()
    return np.asarray(masks, bool)


def prediction_rows(predictions: Iterable[dict], min_area: int = 0,
                    score_thr: float = 0.0) -> Tuple[List[Row], Dict[str, Tuple[int, int]]]:
    """Rows for every image: a contested pixel goes to the higher score.

    Args:
        predictions: dicts as dumped by ``tools/test.py --out`` (``img_path``,
            ``ori_shape``, ``pred_instances`` with ``masks`` and ``scores``).
        min_area: fragments below it are dropped.
        score_thr: predictions below it are ignored.

    Returns:
        The rows and each ImageId's ``(H, W)``.
    """
    rows, shapes = [], {}
    for pred in predictions:
        image_id = osp.splitext(osp.basename(pred['img_path']))[0]
        if image_id in shapes:
            raise ValueError(f'ImageId {image_id} appears twice in the predictions')
        shape = tuple(int(s) for s in pred['ori_shape'][:2])
        shapes[image_id] = shape
        inst = pred.get('pred_instances', {})
        scores = np.asarray(inst['scores'].cpu() if hasattr(inst.get('scores'), 'cpu')
                            else inst.get('scores', []), dtype=np.float64)
        masks = decode_prediction_masks(inst, shape)
        label_map, kept = instances_to_label_map(masks, scores, min_area, score_thr)
        encoded = encode_label_map(label_map)
        rows.extend((image_id, encoded[k], float(scores[kept[k - 1]])) for k in sorted(encoded))
        if not encoded:
            rows.append((image_id, '', float('nan')))
    return rows, shapes


def check_submission(rows: List[Row], shapes: Dict[str, Tuple[int, int]]) -> List[str]:
    """Everything wrong with a submission (an empty list when it is valid).

    Checks: parseable runs (1-indexed, sorted, disjoint, inside the image),
    no pixel in two masks of one image, every image present, an empty
    ``EncodedPixels`` only as an image's single row.
    """
    problems, per_image = [], {}
    for line, (image_id, text, _) in enumerate(rows, start=2):
        if image_id not in shapes:
            problems.append(f'line {line}: ImageId {image_id} is not in the prediction set')
            continue
        try:
            runs = parse_kaggle(text, shapes[image_id])
        except ValueError as err:
            problems.append(f'line {line} (ImageId {image_id}): {err}')
            continue
        per_image.setdefault(image_id, []).append((line, runs))
    for image_id in shapes:
        entries = per_image.get(image_id)
        if not entries:
            problems.append(f'ImageId {image_id} has no row')
            continue
        empty = [line for line, runs in entries if len(runs[0]) == 0]
        if empty and len(entries) > 1:
            problems.append(f'ImageId {image_id}: empty EncodedPixels beside masks (line {empty[0]})')
        pixels = np.concatenate([run_indices(runs) for _, runs in entries])
        if len(np.unique(pixels)) != len(pixels):
            problems.append(f'ImageId {image_id}: masks overlap')
    return problems
