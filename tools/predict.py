"""Segment the nuclei of your own images: label images, overlays, measurements.

    python tools/predict.py IMAGES... --out DIR [--model NAME | --config C --checkpoint K]
        [--tta | --tta-views full] [--tile N] [--diameter auto|PIXELS|none] [--page P]
        [--submission] [--coco-json] [--imagej-roi] [--geojson] [--max-pixels N] [--trust-pickle]
        [--workers N | --scheduler ADDRESS]
    python tools/predict.py --list-models

IMAGES are files, folders (their .png .tif .tiff .jpg .jpeg .bmp files, not
recursive) or globs. Per image: DIR/labels/<name>.png (16-bit; .tif above
65535 nuclei), DIR/overlays/<name>.png, DIR/measurements/<name>.csv and, when
asked, DIR/rois/<name>.zip (ImageJ) and DIR/geojson/<name>.geojson (QuPath).
For the run: DIR/measurements.csv, DIR/submission.csv, DIR/coco_results.json.
DIR/run_settings/<name>.json records the model and options that made an
image's files: images whose outputs exist with the same settings are skipped
(--overwrite redoes them), the others are redone. The model: a shipped one
(--model NAME, a folder of model_zoo/; default: model_zoo.DEFAULT_MODEL;
--list-models lists them with their scores) or any config and checkpoint.
--workers N predicts on a local Dask cluster of N processes, --scheduler on an
existing one (each image a task; a larger image's tiles one task each): the
files are the same as in this process. Whole-slide images (any image above 64
Mpx, OME-Zarr folders, --level L of a pyramid, every image larger than a tile
with --whole-slide) are predicted tile by tile (TIFF and OME-Zarr read tile by
tile, other formats decoded once); their labels: DIR/labels/<name>.ome.zarr. Exit code 0, 1 when an image failed (the others are still done), 2 for bad
arguments (every output path and option is checked before the model is built).
"""
import json
import os
import sys
from collections import Counter

from tqdm import tqdm

from custom_modules.data.image_io import ImageReadError, image_name
from custom_modules.engine.cli_checks import input_problem
from custom_modules.engine.run_settings import result_options, settings_change, settings_path
from custom_modules.inference.model_zoo import ModelZooError, models_table
from custom_modules.inference.predict_args import check_args, parse_args
from custom_modules.data.slide_io import SlideOptions, is_zarr
from custom_modules.inference.prediction_files import (output_paths, render_image,
                                                       write_image_files)
from custom_modules.io.atomic import write_all_or_nothing
from custom_modules.io.exporters import coco_results, join_csv_texts, read_saved_prediction
from custom_modules.io.submission import submission_csv


def slide_options(args):
    """How whole-slide images are chosen and read (--level, --whole-slide)."""
    return SlideOptions(args.level, args.whole_slide)


def outputs(out, name, args):
    """Per-image output paths; ``labels`` is the existing label image (.png or .tif) or None."""
    return output_paths(out, name, args.imagej_roi, args.geojson)


def run_settings(args, inferencer, diameter):
    """The settings recorded with each image's files: the model and the result's options
    (``diameter`` as check_args parsed it)."""
    return inferencer.run_settings(result_options(args.page, args.tta, args.tile, diameter,
                                                  args.level, args.whole_slide))


def rerun_reason(path, args, settings):
    """``(skip, reason)``: skip an image whose outputs exist with these settings; else
    why it is redone (None: it has no outputs yet, or --overwrite)."""
    name = image_name(path)
    if args.overwrite or not all(p and (os.path.isfile(p) or is_zarr(p))
                                 for p in outputs(args.out, name, args).values()):
        return False, None
    reason = settings_change(settings_path(args.out, name), settings)
    return reason is None, reason


def predicted_files(inferencer, paths, args, settings, progress):
    """Yield ``(path, files or exception)``: in this process, or on a Dask cluster
    (--workers/--scheduler: custom_modules.inference.cluster)."""
    if args.workers or args.scheduler:
        from custom_modules.inference.cluster import cluster_files, start_client
        with start_client(args.workers, args.scheduler) as client:
            yield from cluster_files(client, inferencer, paths, args.page, args.out,
                                     settings, args.imagej_roi, args.geojson, progress,
                                     slide_options(args))
        return
    for path in paths:
        try:
            yield path, render_image(inferencer, path, args.page, args.out, settings,
                                     args.imagej_roi, args.geojson, args.max_pixels,
                                     slide_options(args))
        except Exception as err:  # one bad image must not stop the others
            yield path, err
        progress.update(1)


def write_run_files(out, names, args, class_names):
    """DIR/measurements.csv (+ submission.csv, coco_results.json); return the nuclei count."""
    texts, label_maps, coco = [], [], []
    for number, name in enumerate(names, start=1):
        paths = outputs(out, name, args)
        with open(paths['csv']) as f:
            texts.append(f.read())
        if (args.submission or args.coco_json) and paths['labels'].endswith('.zarr'):
            print(f'{name}: a whole-slide image, left out of submission.csv and '
                  'coco_results.json', file=sys.stderr)
        elif args.submission or args.coco_json:
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
    if args.list_models:
        try:
            print(models_table())
        except ModelZooError as err:
            print(f'error: {err}', file=sys.stderr)
            return 2
        return 0
    try:
        diameter, images = check_args(args, check_model=inferencer is None)
        if inferencer is None:
            from custom_modules.inference.inferencer import NucleusInferencer
            inferencer = NucleusInferencer(args.model or args.config, args.checkpoint, args.tta,
                                           args.tile, args.device, diameter,
                                           max_pixels=args.max_pixels,
                                           trust_pickle=args.trust_pickle)
        settings = run_settings(args, inferencer, diameter)
    except (ValueError, KeyError, OSError) as err:  # a KeyError's text without its quotes
        print(f'error: {err.args[0] if isinstance(err, KeyError) else err}', file=sys.stderr)
        return 2
    done, skipped, failed, redone, todo = [], [], [], Counter(), {}
    for path in images:
        problem = input_problem(path)
        skip, reason = (False, None) if problem else rerun_reason(path, args, settings)
        if skip:
            skipped.append(path)
        elif problem:
            failed.append(path)
            tqdm.write(f'failed: {problem}', file=sys.stderr)
        else:
            todo[path] = reason
    with tqdm(total=len(todo), desc='segmenting', unit='task', dynamic_ncols=True) as progress:
        for path, files in predicted_files(inferencer, list(todo), args, settings, progress):
            try:
                if isinstance(files, Exception):
                    raise files
                write_image_files(args.out, path, files)
                done.append(path)
                if todo[path]:
                    redone[todo[path]] += 1
            except Exception as err:  # one bad image must not stop the others
                failed.append(path)
                message = str(err) if isinstance(err, ImageReadError) else f'{path}: {err!r}'
                tqdm.write(f'failed: {message}', file=sys.stderr)
    kept = set(done + skipped)
    try:
        nuclei = write_run_files(args.out, [image_name(p) for p in images if p in kept], args,
                                 inferencer.class_names)
    except OSError as err:
        print(f'error: {args.out}/measurements.csv and the other run files not written '
              f'({err.strerror or err}); the images\' own files are: rerun the command',
              file=sys.stderr)
        return 1
    why = ''.join(f'; {n} redone: {reason}' for reason, n in redone.items())
    print(f'{len(done)} images done{f" ({why[2:]})" if why else ""}, {len(skipped)} skipped '
          f'(outputs exist with the same settings; --overwrite redoes them), {len(failed)} '
          f'failed; {nuclei} nuclei in {len(kept)} images; outputs in {args.out}')
    if failed:
        print('failed: ' + ', '.join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
