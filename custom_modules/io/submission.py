"""Kaggle submission rows from predictions, and the checks they must pass."""
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from custom_modules.data.image_io import image_name
from custom_modules.io.exporters import submission_text
from custom_modules.structures.label_map import LabelMapPrediction, from_sample
from custom_modules.structures.rle import encode_label_map, parse_kaggle, run_indices

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


def check_predictions(predictions) -> None:
    """Raise ValueError unless ``predictions`` is a non-empty list of prediction dicts."""
    expected = 'expected the list written by tools/test.py --out'
    if not isinstance(predictions, (list, tuple)):
        raise ValueError(f'{expected}, got a {type(predictions).__name__} object')
    if not predictions:
        raise ValueError(f'{expected}, got an empty list (no image was predicted)')
    for i, pred in enumerate(predictions):
        if not isinstance(pred, dict):
            raise ValueError(f'{expected}, item {i} is a {type(pred).__name__} object, not a dict')
        missing = {'img_path', 'ori_shape'} - set(pred)
        if missing:
            raise ValueError(f'{expected}, item {i} lacks {sorted(missing)}')


def prediction_label_maps(predictions: Iterable[dict], min_area: int = 0,
                          score_thr: float = 0.0) -> Iterator[Tuple[dict, str, LabelMapPrediction]]:
    """``(prediction, ImageId, label-map prediction)`` of every dumped image.

    Args:
        predictions: dicts as dumped by ``tools/test.py --out`` (``img_path``,
            ``ori_shape``, ``pred_label_map`` and ``pred_instances``; or a plain
            detector's ``pred_instances`` with ``masks`` and ``scores``).
        min_area: fragments below it are dropped (after overlap removal).
        score_thr: predictions below it are ignored.
    """
    seen = set()
    for pred in predictions:
        image_id = image_name(pred['img_path'])
        if image_id in seen:
            raise ValueError(f'ImageId {image_id} appears twice in the predictions')
        seen.add(image_id)
        shape = tuple(int(s) for s in pred['ori_shape'][:2])
        inst = dict(pred.get('pred_instances', {}))
        if pred.get('pred_label_map') is None:  # a plain detector's masks, RLE-encoded by the dump
            inst['masks'] = decode_prediction_masks(inst, shape)
        yield pred, image_id, from_sample(dict(pred, pred_instances=inst), score_thr, min_area)


def prediction_rows(predictions: Iterable[dict], min_area: int = 0,
                    score_thr: float = 0.0) -> Tuple[List[Row], Dict[str, Tuple[int, int]]]:
    """Rows for every image (see :func:`prediction_label_maps` for the arguments).

    Returns:
        The rows and each ImageId's ``(H, W)``.
    """
    return label_map_rows((image_id, found.label_map, found.scores) for _, image_id, found in
                          prediction_label_maps(predictions, min_area, score_thr))


def label_map_rows(label_maps: Iterable[Tuple[str, np.ndarray, Optional[np.ndarray]]]
                   ) -> Tuple[List[Row], Dict[str, Tuple[int, int]]]:
    """Rows of ``(ImageId, label map, scores or None)``: a row per nucleus, an empty
    row for an image without any; and each ImageId's ``(H, W)``."""
    rows, shapes = [], {}
    for image_id, label_map, scores in label_maps:
        shapes[image_id] = label_map.shape
        encoded = encode_label_map(label_map)
        rows.extend((image_id, encoded[k], float('nan') if scores is None else
                     float(scores[k - 1])) for k in sorted(encoded))
        if not encoded:
            rows.append((image_id, '', float('nan')))
    return rows, shapes


def submission_csv(label_maps: Iterable[Tuple[str, np.ndarray]]) -> str:
    """Kaggle submission text of ``(ImageId, label map)`` pairs, checked by
    :func:`check_submission` (ValueError naming the first problems when invalid).

    Class-agnostic, as the competition: classes are not written; ImageIds go through
    :func:`~custom_modules.io.exporters.submission_text`.
    """
    rows, shapes = label_map_rows((name, label_map, None) for name, label_map in label_maps)
    problems = check_submission(rows, shapes)
    if problems:
        raise ValueError('the submission would be invalid: ' + '; '.join(problems[:5]))
    return submission_text((image_id, pixels) for image_id, pixels, _ in rows)


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
