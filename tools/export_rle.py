"""Write the Kaggle submission CSV from `tools/test.py --out` predictions.

    python tools/export_rle.py PREDICTIONS.pkl --out submission.csv [--coco-json results.json]

Rows: ImageId,EncodedPixels (1-indexed, column-major, sorted runs); masks of an
image never overlap (a contested pixel goes to the higher score); every image
has a row (an empty EncodedPixels when nothing was found). The file is checked
against those rules and written atomically, or not at all; with ``--coco-json``
both files are written or neither. Missing output folders are made.
"""
import argparse
import json
import os
import pickle
import sys

from custom_modules.atomic import check_can_write, write_all_or_nothing
from custom_modules.image_io import image_name
from custom_modules.rle import coco_encode, kaggle_decode
from custom_modules.submission import check_predictions, check_submission, prediction_rows


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
    return parser.parse_args(argv)


def coco_results(predictions: list, rows: list, shapes: dict) -> list:
    """COCO results (RLE segmentations) of the submission's rows."""
    numbers = {image_name(p['img_path']): p.get('img_id') for p in predictions}
    return [dict(image_id=numbers[image_id], image_name=image_id, category_id=1,
                 segmentation=coco_encode(kaggle_decode(text, shapes[image_id])), score=score)
            for image_id, text, score in rows if text]


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
        with open(args.predictions, 'rb') as f:
            predictions = pickle.load(f)
        check_predictions(predictions)
        rows, shapes = prediction_rows(predictions, args.min_area, args.score_thr)
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
    texts = {args.out: 'ImageId,EncodedPixels\n' + ''.join(f'{i},{p}\n' for i, p, _ in rows)}
    if args.coco_json:
        results = coco_results(predictions, rows, shapes)
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
