"""Write the Kaggle submission CSV from `tools/test.py --out` predictions.

    python tools/export_rle.py PREDICTIONS.pkl --out submission.csv [--coco-json results.json]
        [--trust-pickle]

Rows: ImageId,EncodedPixels (1-indexed, column-major, sorted runs); masks of an
image never overlap (a contested pixel goes to the higher score); every image
has a row (an empty EncodedPixels when nothing was found). The file is checked
against those rules and written atomically, or not at all; with ``--coco-json``
both files are written or neither (COCO ``category_id`` = predicted class + 1,
data_prep's category ids; the CSV is class-agnostic, as the competition wants).
Missing output folders are made. The pickle is read with a restricted
unpickler (numbers, strings, numpy arrays, torch tensors: what tools/test.py
writes); anything else is refused unless --trust-pickle is given.
"""
import argparse
import json
import os
import pickle
import sys

from custom_modules.io.atomic import check_can_write, write_all_or_nothing
from custom_modules.io.exporters import coco_results, submission_text
from custom_modules.io.safe_pickle import UnsafePickleError, load_pickle
from custom_modules.io.submission import (check_predictions, check_submission,
                                          prediction_label_maps, prediction_rows)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Predictions (.pkl) -> Kaggle submission CSV')
    parser.add_argument('predictions', help='pickle written by tools/test.py --out')
    parser.add_argument('--out', required=True, help='submission CSV to write')
    parser.add_argument('--coco-json', help='also write COCO results JSON (RLE segmentations)')
    parser.add_argument('--min-area', type=int, default=10,
                        help='drop fragments smaller than this after overlap removal (default 10, '
                        'as postprocess.min_area of the configs)')
    parser.add_argument('--score-thr', type=float, default=0.0,
                        help='ignore predictions scoring below this (default 0)')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='unpickle any object (by default only numbers, arrays and tensors '
                        'are read: unpickling can run code, only for files you trust)')
    return parser.parse_args(argv)


def coco_json_results(predictions: list, min_area: int, score_thr: float) -> list:
    """COCO results (RLE segmentations), each nucleus with its class's ``category_id``."""
    return [result for pred, image_id, found in prediction_label_maps(predictions, min_area,
                                                                     score_thr)
            for result in coco_results(pred.get('img_id'), image_id, found)]


def main(argv=None) -> int:
    args = parse_args(argv)
    outputs = [args.out] + ([args.coco_json] if args.coco_json else [])
    if len(set(map(os.path.abspath, outputs))) < len(outputs):
        print('error: --out and --coco-json name the same file', file=sys.stderr)
        return 2
    try:
        check_can_write(outputs)
    except OSError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    try:
        predictions = load_pickle(args.predictions, trust=args.trust_pickle)
        check_predictions(predictions)
        rows, shapes = prediction_rows(predictions, args.min_area, args.score_thr)
    except UnsafePickleError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    except ValueError as err:
        print(f'error: {args.predictions}: {err}', file=sys.stderr)
        return 2
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, AttributeError,
            ImportError) as err:  # what unpickling a foreign file raises
        print(f'error: {args.predictions}: cannot read predictions ({err!r})', file=sys.stderr)
        return 2
    problems = check_submission(rows, shapes)
    if problems:
        print(f'error: refusing to write {args.out}, the submission would be invalid:', file=sys.stderr)
        print('\n'.join(problems[:20]), file=sys.stderr)
        return 2
    texts = {args.out: submission_text((i, p) for i, p, _ in rows)}
    if args.coco_json:
        results = coco_json_results(predictions, args.min_area, args.score_thr)
        texts[args.coco_json] = json.dumps(results)
    try:
        write_all_or_nothing(texts)
    except OSError as err:
        print(f'error: {err}; nothing was written', file=sys.stderr)
        return 2
    nuclei = sum(1 for _, p, _ in rows if p)
    print(f'wrote {args.out}: {len(shapes)} images, {nuclei} nuclei')
    if args.coco_json:
        print(f'wrote {args.coco_json}: {len(results)} detections')
    return 0


if __name__ == '__main__':
    sys.exit(main())
