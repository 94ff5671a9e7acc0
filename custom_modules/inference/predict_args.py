"""The command line of ``tools/predict.py``: its options, and their checks made before
any model is built (a bad argument is one line and exit 2, with nothing written)."""
import argparse
import glob
import os
from typing import List, Tuple, Union

from custom_modules.data.image_io import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, image_name
from custom_modules.data.slide_io import is_zarr
from custom_modules.engine.cli_checks import check_device, check_output_folder
from custom_modules.engine.run_settings import settings_path
from custom_modules.inference.builder import add_tta_arguments
from custom_modules.inference.diameter import parse_diameter
from custom_modules.inference.model_zoo import DEFAULT_MODEL
from custom_modules.inference.prediction_files import output_paths


def parse_args(argv=None) -> argparse.Namespace:
    """The options; a bad combination is argparse's one-line refusal (exit 2)."""
    parser = argparse.ArgumentParser(description='Segment nuclei in your own images')
    parser.add_argument('inputs', nargs='*', metavar='INPUT',
                        help='image files, folders or globs')
    parser.add_argument('--out', help='output folder')
    parser.add_argument('--model', help=f'a shipped model (a folder of model_zoo/; default '
                        f'{DEFAULT_MODEL}; --list-models lists them)')
    parser.add_argument('--list-models', action='store_true',
                        help='list the shipped models with their scores and sizes, and exit')
    parser.add_argument('--config', help='model config (with --checkpoint; default: the '
                        'default shipped model)')
    parser.add_argument('--checkpoint', help='model weights for --config')
    add_tta_arguments(parser)
    parser.add_argument('--tile', type=int, help='tile images larger than N x N (0: never)')
    parser.add_argument('--diameter', default='auto',
                        help="nucleus diameter in pixels, or 'auto' (default: estimated per image, "
                        "and the image rescaled to the model's training size), or 'none'")
    parser.add_argument('--page', type=int, default=0, help='page of multi-page TIFFs (from 0)')
    parser.add_argument('--level', type=int, default=0,
                        help='pyramid level of a whole-slide OME-TIFF or OME-Zarr (0: full '
                        'resolution); read lazily, tile by tile')
    parser.add_argument('--whole-slide', action='store_true',
                        help='predict every image larger than a tile tile by tile, with an '
                        'OME-Zarr label image (default: images above 64 Mpx, and OME-Zarr '
                        'input)')
    parser.add_argument('--device', default='cpu', help="torch device (default 'cpu')")
    parser.add_argument('--submission', action='store_true', help='write DIR/submission.csv')
    parser.add_argument('--coco-json', action='store_true', help='write DIR/coco_results.json')
    parser.add_argument('--imagej-roi', action='store_true', help='write DIR/rois/<name>.zip')
    parser.add_argument('--geojson', action='store_true', help='write DIR/geojson/<name>.geojson')
    parser.add_argument('--overwrite', action='store_true', help='redo images whose outputs exist')
    parser.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='refuse larger images, from their header before decoding (memory: '
                        '~16 bytes per pixel up to 64 Mpx, then the decoded pixels of a PNG, '
                        f'JPEG or BMP; 0: no limit; default {DEFAULT_MAX_PIXELS:,})')
    parser.add_argument('--workers', type=int, default=0,
                        help='predict on a local Dask cluster of N worker processes')
    parser.add_argument('--scheduler', help='predict on the Dask cluster at this address '
                        '(e.g. tcp://host:8786; workers started with Dask\'s own tools)')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='load a checkpoint that pickles more than tensors and data '
                        '(unpickling it can run code: only for files you trust)')
    args = parser.parse_args(argv)
    if args.level < 0:
        parser.error(f'--level {args.level}: pyramid levels count from 0')
    if args.workers < 0 or (args.workers and args.scheduler):
        parser.error('--workers N (N >= 1) or --scheduler ADDRESS, not both')
    if args.model and (args.config or args.checkpoint):
        parser.error('--model or --config/--checkpoint, not both')
    if not args.list_models and not (args.inputs and args.out is not None):
        parser.error('give INPUT... and --out DIR (or --list-models)')
    return args


def find_images(inputs):
    """Image paths of files, folders and globs, in order; ValueError on a bad input.

    A path named on the command line, and an entry of a folder or glob with an
    image extension, is kept even when it cannot be read (a symbolic link loop,
    a dangling link): the run reports it as failed
    (:func:`~custom_modules.engine.cli_checks.input_problem`).
    """
    paths = []
    for item in inputs:
        if os.path.isdir(item) and not is_zarr(item):
            found = [os.path.join(item, f) for f in sorted(os.listdir(item))
                     if not f.startswith('.')]
        else:
            found = [item] if os.path.lexists(item) else sorted(glob.glob(item))
        if not found and not os.path.isdir(item):
            raise ValueError(f'{item}: no such file, folder or matching glob')
        paths += [p for p in found if is_zarr(p) or not os.path.isdir(p) and
                  (p == item or os.path.splitext(p)[1].lower() in IMAGE_EXTENSIONS)]
    names = {}
    for path in dict.fromkeys(map(os.path.normpath, paths)):
        if image_name(path) in names:
            raise ValueError(f'{names[image_name(path)]} and {path} would write the same outputs')
        names[image_name(path)] = path
    return list(names.values())


def check_outputs(args):
    """Refuse, before any model is built, an --out where the run's files cannot be written."""
    files = [f'{args.out}/labels/.probe.png', f'{args.out}/measurements.csv',
             settings_path(args.out, '.probe')]
    files += [p for p in output_paths(args.out, '.probe', args.imagej_roi,
                                      args.geojson).values() if p]
    files += [f'{args.out}/submission.csv'] if args.submission else []
    files += [f'{args.out}/coco_results.json'] if args.coco_json else []
    check_output_folder(args.out, files)


def check_args(args, check_model: bool = True) -> Tuple[Union[str, float, None], List[str]]:
    """Check the options, the model (``check_model``: an unknown name is one line, before
    any image), the output folder, the device and the inputs.

    Returns:
        ``(diameter, images)``: :func:`~custom_modules.inference.diameter.parse_diameter`'s
        reading of --diameter, and the image paths (:func:`find_images`).

    Raises:
        ValueError, KeyError, OSError: one line saying what is wrong.
    """
    diameter = parse_diameter(args.diameter)
    if args.max_pixels < 0:
        raise ValueError(f'--max-pixels {args.max_pixels}: must be >= 0 (0: no limit)')
    if check_model:
        from custom_modules.inference.inferencer import resolve_model
        resolve_model(args.model or args.config, args.checkpoint)
    check_outputs(args)
    check_device(args.device)
    images = find_images(args.inputs)
    if not images:
        raise ValueError(f'no images found in {" ".join(args.inputs)} '
                         f'(extensions {" ".join(IMAGE_EXTENSIONS)})')
    return diameter, images
