"""Write the Kaggle submission CSV from `tools/test.py --out` predictions.

    python tools/export_rle.py PREDICTIONS.pkl --out submission.csv [--coco-json results.json]

Rows: ImageId,EncodedPixels (1-indexed, column-major, sorted runs); masks of an
image never overlap (a contested pixel goes to the higher score); every image
has a row (an empty EncodedPixels when nothing was found). The file is checked
against those rules and written atomically, or not at all.
"""
import argparse
import json
import os
import pickle
import sys

from custom_modules.rle import coco_encode, kaggle_decode
from custom_modules.submission import check_submission, prediction_rows


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


def write_atomic(path: str, text: str) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        with open(args.predictions, 'rb') as f:
            predictions = pickle.load(f)
        rows, shapes = prediction_rows(predictions, args.min_area, args.score_thr)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError) as err:
        print(f'error: {args.predictions}: cannot read predictions ({err!r})', file=sys.stderr)
        return 2
    problems = check_submission(rows, shapes)
    if problems:
        print(f'error: refusing to write {args.out}, the submission would be invalid:', file=sys.stderr)
        print('\n'.join(problems[:20]), file=sys.stderr)
        return 2
    write_atomic(args.out, 'ImageId,EncodedPixels\n' + ''.join(f'{i},{p}\n' for i, p, _ in rows))
    nuclei = sum(1 for _, p, _ in rows if p)
    print(f'wrote {args.out}: {len(shapes)} images, {nuclei} nuclei')
    if args.coco_json:
        numbers = {p['img_path']: p.get('img_id') for p in predictions}
        numbers = {os.path.splitext(os.path.basename(k))[0]: v for k, v in numbers.items()}
        results = [dict(image_id=numbers[image_id], image_name=image_id, category_id=1,
                        segmentation=coco_encode(kaggle_decode(text, shapes[image_id])),
                        score=score) for image_id, text, score in rows if text]
        write_atomic(args.coco_json, json.dumps(results))
        print(f'wrote {args.coco_json}: {len(results)} detections')
    return 0


if __name__ == '__main__':
    sys.exit(main())
