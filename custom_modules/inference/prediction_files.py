"""The files ``tools/predict.py`` writes for one image, made from its prediction.

One function makes them, in the process that predicted the image (this one, or
a Dask worker: :mod:`custom_modules.inference.cluster`), so a cluster writes what the
in-process path writes, byte for byte; the caller writes them all or none
(:func:`~custom_modules.io.atomic.write_all_or_nothing`).
"""
import os
import shutil
from typing import Dict, List, Optional, Sequence

import numpy as np

from custom_modules.io.exporters import (geojson_text, label_image, measurements_csv, nucleus_outlines,
                        overlay_png, roi_zip)
from custom_modules.data.image_io import image_name, read_any_image
from custom_modules.data.slide_io import SlideOptions, is_whole_slide
from custom_modules.io.atomic import write_all_or_nothing
from custom_modules.io.ome_zarr import PlacedFolder
from custom_modules.structures.label_map import LabelMapPrediction
from custom_modules.engine.run_settings import settings_path, settings_text


def output_paths(out: str, name: str, imagej_roi: bool = False,
                 geojson: bool = False) -> Dict[str, Optional[str]]:
    """An image's output paths; ``labels`` is the existing label image (.png or .tif) or None."""
    labels = label_images(out, name)
    paths = dict(labels=(labels or [None])[0], overlay=f'{out}/overlays/{name}.png',
                 csv=f'{out}/measurements/{name}.csv')
    if imagej_roi:
        paths['roi'] = f'{out}/rois/{name}.zip'
    if geojson:
        paths['geojson'] = f'{out}/geojson/{name}.geojson'
    return paths


def label_images(out: str, name: str) -> List[str]:
    """The label images of ``name`` that exist: ``.png``, ``.tif`` (files), ``.ome.zarr``
    (a whole-slide image's folder)."""
    return [p for p in (f'{out}/labels/{name}.png', f'{out}/labels/{name}.tif')
            if os.path.isfile(p)] + [p for p in [f'{out}/labels/{name}.ome.zarr']
                                     if os.path.isdir(p)]


def image_files(out: str, name: str, image: np.ndarray, result: Dict, settings: Dict,
                class_names: Sequence[str], imagej_roi: bool = False,
                geojson: bool = False) -> Dict[str, object]:
    """``{path: bytes or text}`` of one image: label image, overlay, measurements,
    settings and, when asked, ImageJ ROIs and GeoJSON.

    Args:
        out: the output folder.
        name: the image's name (``image_io.image_name``).
        image: the decoded image (the overlay is drawn on it).
        result: ``NucleusInferencer.predict``'s dict for it.
        settings: the run settings recorded beside the files.
        class_names: names of the class indices (GeoJSON).
    """
    pred = LabelMapPrediction(result['label_map'], result['scores'], result['classes'])
    ext, data = label_image(pred.label_map)
    paths = output_paths(out, name, imagej_roi, geojson)
    files = {f'{out}/labels/{name}{ext}': data, paths['overlay']: overlay_png(image, pred),
             paths['csv']: measurements_csv(name, result['measurements']),
             settings_path(out, name): settings_text(settings)}
    lines = nucleus_outlines(pred.label_map) if imagej_roi or geojson else {}
    if imagej_roi:
        files[paths['roi']] = roi_zip(lines)
    if geojson:
        files[paths['geojson']] = geojson_text(lines, pred, class_names)
    return files


def render_image(inferencer, path: str, page: int, out: str, settings: Dict,
                 imagej_roi: bool = False, geojson: bool = False,
                 max_pixels: Optional[int] = None,
                 slide: Optional[SlideOptions] = SlideOptions()) -> Dict[str, object]:
    """Read, predict and make the output files of one image file (:func:`image_files`).

    ``max_pixels``: the pixel budget (``None``: the inferencer's). ``slide``: how
    whole-slide images are chosen and read (``None``: never; they are predicted
    tile by tile by :func:`~custom_modules.inference.slide.slide_files`).
    """
    if slide is not None:
        from custom_modules.inference.cluster import tiled_wrapper
        tiled = tiled_wrapper(inferencer.predictor)
        if is_whole_slide(path, page, slide, tiled.tiles_shape if tiled else lambda h, w: False):
            from custom_modules.inference.slide import slide_files
            return slide_files(inferencer, path, page, out, settings, imagej_roi, geojson,
                               max_pixels, slide.level)
    image = read_any_image(path, page, inferencer.max_pixels if max_pixels is None
                           else max_pixels)
    result = inferencer.predict(image, path)
    return image_files(out, image_name(path), image, result, settings, inferencer.class_names,
                       imagej_roi, geojson)


def write_image_files(out: str, path: str, files: Dict[str, object]) -> None:
    """Write one image's files (:func:`render_image`'s) all or none; drop its label
    image of another format (.png/.tif/.ome.zarr)."""
    stale = [p for p in label_images(out, image_name(path)) if p not in files]
    write_all_or_nothing({p: data for p, data in files.items()
                          if not isinstance(data, PlacedFolder)})  # a slide's: in place
    for labels in stale:
        shutil.rmtree(labels) if os.path.isdir(labels) else os.remove(labels)
