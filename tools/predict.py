"""Segment the nuclei of your own images: label images, overlays, measurements.

    python tools/predict.py IMAGES... --out DIR [--config C --checkpoint K] [--tta]
        [--tile N] [--page P] [--submission] [--coco-json] [--imagej-roi] [--geojson]
        [--max-pixels N] [--trust-pickle]

IMAGES are files, folders (their .png .tif .tiff .jpg .jpeg .bmp files, not
recursive) or globs. Per image: DIR/labels/<name>.png (16-bit; .tif above
65535 nuclei), DIR/overlays/<name>.png, DIR/measurements/<name>.csv and, when
asked, DIR/rois/<name>.zip (ImageJ) and DIR/geojson/<name>.geojson (QuPath).
For the run: DIR/measurements.csv, DIR/submission.csv, DIR/coco_results.json.
Images whose outputs exist are skipped (--overwrite redoes them). Exit code 0,
1 when an image failed (the others are still done), 2 for bad arguments.
"""
import argparse
import glob
import json
import os
import sys

from tqdm import tqdm

from custom_modules.atomic import write_all_or_nothing
from custom_modules.exporters import (coco_results, geojson_text, join_csv_texts, label_image,
                                      measurements_csv, nucleus_outlines, overlay_png,
                                      read_saved_prediction, roi_zip, submission_csv)
from custom_modules.image_io import (DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageReadError,
                                     image_name, read_any_image)
from custom_modules.label_map import LabelMapPrediction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Segment nuclei in your own images')
    parser.add_argument('inputs', nargs='+', metavar='INPUT',
                        help='image files, folders or globs')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--config', help='model config (default: the shipped model)')
    parser.add_argument('--checkpoint', help='model weights (default: the shipped model)')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation (the config's tta_views)")
    parser.add_argument('--tile', type=int, help='tile images larger than N x N (0: never)')
    parser.add_argument('--page', type=int, default=0, help='page of multi-page TIFFs (from 0)')
    parser.add_argument('--device', default='cpu', help="torch device (default 'cpu')")
    parser.add_argument('--submission', action='store_true', help='write DIR/submission.csv')
    parser.add_argument('--coco-json', action='store_true', help='write DIR/coco_results.json')
    parser.add_argument('--imagej-roi', action='store_true', help='write DIR/rois/<name>.zip')
    parser.add_argument('--geojson', action='store_true', help='write DIR/geojson/<name>.geojson')
    parser.add_argument('--overwrite', action='store_true', help='redo images whose outputs exist')
    parser.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='refuse larger images, from their header before decoding (memory: '
                        f'~16 bytes per pixel; 0: no limit; default {DEFAULT_MAX_PIXELS:,})')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='load a checkpoint that pickles more than tensors and data '
                        '(unpickling it can run code: only for files you trust)')
    return parser.parse_args(argv)


def find_images(inputs):
    """Image paths of files, folders and globs, in order; ValueError on a bad input."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = [os.path.join(item, f) for f in sorted(os.listdir(item))
                     if not f.startswith('.')]
        else:
            found = [item] if os.path.isfile(item) else sorted(glob.glob(item))
        if not found and not os.path.isdir(item):
            raise ValueError(f'{item}: no such file, folder or matching glob')
        paths += [p for p in found if os.path.isfile(p) and
                  (p == item or os.path.splitext(p)[1].lower() in IMAGE_EXTENSIONS)]
    names = {}
    for path in dict.fromkeys(map(os.path.normpath, paths)):
        if image_name(path) in names:
            raise ValueError(f'{names[image_name(path)]} and {path} would write the same outputs')
        names[image_name(path)] = path
    return list(names.values())


def outputs(out, name, args):
    """Per-image output paths; ``labels`` is the existing label image (.png or .tif) or None."""
    labels = [p for p in (f'{out}/labels/{name}.png', f'{out}/labels/{name}.tif')
              if os.path.isfile(p)]
    paths = dict(labels=(labels or [None])[0], overlay=f'{out}/overlays/{name}.png',
                 csv=f'{out}/measurements/{name}.csv')
    if args.imagej_roi:
        paths['roi'] = f'{out}/rois/{name}.zip'
    if args.geojson:
        paths['geojson'] = f'{out}/geojson/{name}.geojson'
    return paths


def segment(inferencer, path, out, args):
    """Predict one image and write all its files, or none."""
    name, image = image_name(path), read_any_image(path, args.page, args.max_pixels)
    result = inferencer.predict(image, path)
    pred = LabelMapPrediction(result['label_map'], result['scores'], result['classes'])
    paths, (ext, data) = outputs(out, name, args), label_image(pred.label_map)
    files = {f'{out}/labels/{name}{ext}': data, paths['overlay']: overlay_png(image, pred),
             paths['csv']: measurements_csv(name, result['measurements'])}
    lines = nucleus_outlines(pred.label_map) if args.imagej_roi or args.geojson else {}
    if args.imagej_roi:
        files[paths['roi']] = roi_zip(lines)
    if args.geojson:
        files[paths['geojson']] = geojson_text(lines, pred, inferencer.class_names)
    write_all_or_nothing(files)
    if paths['labels'] and not paths['labels'].endswith(ext):  # the other format, stale
        os.remove(paths['labels'])


def write_run_files(out, names, args, class_names):
    """DIR/measurements.csv (+ submission.csv, coco_results.json); return the nuclei count."""
    texts, label_maps, coco = [], [], []
    for number, name in enumerate(names, start=1):
        paths = outputs(out, name, args)
        with open(paths['csv']) as f:
            texts.append(f.read())
        if args.submission or args.coco_json:
            pred = read_saved_prediction(paths['labels'], paths['csv'], class_names)
            label_maps.append((name, pred.label_map))
            coco += coco_results(number, name, pred) if args.coco_json else []
    files = {f'{out}/measurements.csv': join_csv_texts(texts)}
    if args.submission:
        files[f'{out}/submission.csv'] = submission_csv(label_maps)
    if args.coco_json:
        files[f'{out}/coco_results.json'] = json.dumps(coco)
    write_all_or_nothing(files)
    return sum(len(t.splitlines()) - 1 for t in texts)


def main(argv=None, inferencer=None):
    """Run the tool; ``inferencer`` replaces the --config/--checkpoint model (tests)."""
    args = parse_args(argv)
    try:
        if args.max_pixels < 0:
            raise ValueError(f'--max-pixels {args.max_pixels}: must be >= 0 (0: no limit)')
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise ValueError(f'--out {args.out} is an existing file, not a folder')
        images = find_images(args.inputs)
        if not images:
            raise ValueError(f'no images found in {" ".join(args.inputs)} '
                             f'(extensions {" ".join(IMAGE_EXTENSIONS)})')
        if inferencer is None:
            from custom_modules.inferencer import NucleusInferencer
            inferencer = NucleusInferencer(args.config, args.checkpoint, args.tta, args.tile,
                                           args.device, max_pixels=args.max_pixels,
                                           trust_pickle=args.trust_pickle)
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    done, skipped, failed = [], [], []
    for path in tqdm(images, desc='segmenting', unit='image', dynamic_ncols=True):
        paths = outputs(args.out, image_name(path), args)
        if not args.overwrite and all(p and os.path.isfile(p) for p in paths.values()):
            skipped.append(path)
            continue
        try:
            segment(inferencer, path, args.out, args)
            done.append(path)
        except Exception as err:  # one bad image must not stop the others
            failed.append(path)
            message = str(err) if isinstance(err, ImageReadError) else f'{path}: {err!r}'
            tqdm.write(f'failed: {message}', file=sys.stderr)
    kept = [image_name(p) for p in images if p in done or p in skipped]
    nuclei = write_run_files(args.out, kept, args, inferencer.class_names)
    print(f'{len(done)} images done, {len(skipped)} skipped (outputs exist; --overwrite redoes '
          f'them), {len(failed)} failed; {nuclei} nuclei in {len(kept)} images; '
          f'outputs in {args.out}')
    if failed:
        print('failed: ' + ', '.join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
