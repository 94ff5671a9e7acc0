"""Whole-slide prediction: tiles read lazily, joined on a disk-backed canvas, OME-Zarr out.

For a whole-slide image (:func:`~custom_modules.data.slide_io.is_whole_slide`)
nothing of the size of the image is held in memory:

- each tile is read from the file (:class:`~custom_modules.data.slide_io.LazyImage`;
  a PNG, JPEG, BMP... is decoded once into its raw array and read from it:
  :class:`~custom_modules.data.slide_io.DecodedImage`) and normalised with statistics of a bounded sample of the slide
  (:func:`~custom_modules.data.slide_io.input_scaling`), then predicted here or
  on a Dask worker (the model's ``map_tiles``);
- the tiles are joined by the code of :func:`~custom_modules.inference.tiling.predict_tiled`
  (``join_tiles``, ``paste_nuclei``) into an int32 canvas in a temporary file beside
  the output (:class:`DiskCanvas`, removed at the end, even on error), whose pages
  are handed back to the system as the pasting goes;
- labels are renumbered block by block and written as OME-Zarr
  (:func:`~custom_modules.io.ome_zarr.write_label_zarr`); measurements, outlines
  (GeoJSON, ImageJ ROIs) are computed block by block on the nuclei's boxes, and
  the overlay is drawn at most ``OVERLAY_SIDE`` px on its longer side.

Memory: a tile, the nuclei's mask crops (as ``predict_tiled``), a block (and the
raw decoded pixels of a format without random access).
"""
import mmap
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from custom_modules.data.image_io import ImageReadError, check_pixels, image_name
from custom_modules.data.intensity import to_model_input
from custom_modules.data.slide_io import LazyImage, input_scaling, open_slide, read_sample
from custom_modules.engine.run_settings import settings_path, settings_text
from custom_modules.evaluation.measure import measure_nuclei
from custom_modules.io.atomic import remove_stale_temps
from custom_modules.io.exporters import (geojson_text, measurements_csv, nucleus_outlines,
                                         overlay_png, roi_zip)
from custom_modules.io.ome_zarr import PlacedFolder, write_label_zarr
from custom_modules.structures.label_map import LabelMapPrediction
from custom_modules.structures.label_ops import relabel_table
from custom_modules.structures.tile_grid import tile_layout

RELEASE_BYTES = 16 << 20  # canvas pages touched before they are handed back
BLOCK = 1024  # side of the blocks measured at a time
OVERLAY_SIDE = 1024  # the overlay's longer side, at most
PROBE_SIDE = 2048  # --diameter auto: the central crop the size probe sees
MEASURED_COORDS = (('centroid_y', 0), ('centroid_x', 1), ('bbox_min_row', 0),
                   ('bbox_min_col', 1), ('bbox_max_row', 0), ('bbox_max_col', 1))


class DiskCanvas:
    """An ``H x W`` int32 label map in a temporary file (zeros), mapped into memory.

    The pages written or read are handed back to the system (``madvise``) every
    ``RELEASE_BYTES``, so the process holds no more of the map than that; the
    data stays in the file (the page cache). :meth:`close` removes the file.
    """

    def __init__(self, path: str, shape: Tuple[int, int]) -> None:
        self.path, self.shape, self._touched = path, tuple(shape), 0
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, 4 * shape[0] * shape[1])
            self._map = mmap.mmap(fd, 4 * shape[0] * shape[1])
        finally:
            os.close(fd)
        self.array = np.frombuffer(self._map, np.int32).reshape(shape)

    def touched(self, rows: int, cols: int) -> None:
        """Count a window of ``rows x cols`` touched; release the pages past the budget."""
        self._touched += rows * max(mmap.PAGESIZE, 4 * cols)
        if self._touched > RELEASE_BYTES:
            self._map.madvise(mmap.MADV_DONTNEED)
            self._touched = 0

    def read(self, y0: int, y1: int, x0: int, x1: int, step: int = 1) -> np.ndarray:
        """A copy of ``[y0:y1:step, x0:x1:step]``."""
        block = np.array(self.array[y0:y1:step, x0:x1:step])
        self.touched(-(-(y1 - y0) // step), x1 - x0)
        return block

    def close(self) -> None:
        self.array = None
        try:
            self._map.close()
        except BufferError:  # a view still alive: the mapping goes with it
            pass
        if os.path.exists(self.path):
            os.remove(self.path)


def check_scale(predictor, image: LazyImage, scaling, mode: str, path: str) -> float:
    """The nucleus diameter for a slide, which is predicted at its own scale.

    ``--diameter auto``: the size probe runs on the central ``PROBE_SIDE`` crop;
    an estimate that asks for rescaling (outside 10-50 px), or a given diameter
    other than the training one, is refused in one line (use ``--level``).
    """
    from custom_modules.inference.diameter import NucleusRescaledModel
    if not isinstance(predictor, NucleusRescaledModel):
        return float('nan')
    import torch
    h, w = image.shape[:2]
    y0, x0 = max(0, (h - PROBE_SIDE) // 2), max(0, (w - PROBE_SIDE) // 2)
    crop = to_model_input(image.read(y0, min(h, y0 + PROBE_SIDE), x0, min(w, x0 + PROBE_SIDE)),
                          mode, scaling)
    with torch.no_grad():
        factor = predictor.factor(crop)
    diameter = float(predictor.last_estimate.diameter)
    if factor != 1.0:
        raise ImageReadError(
            f'{path}: nuclei of about {diameter:.0f} px would need the slide rescaled by '
            f'{factor:.2f}, which the whole-slide path does not do; pick a pyramid level '
            'with nuclei of 10-50 px (--level) or predict it as it is (--diameter none)')
    return diameter


def label_areas(canvas: DiskCanvas, num: int) -> np.ndarray:
    """The area of each label 1..num, counted band by band."""
    h, w = canvas.shape
    rows = max(1, (BLOCK * BLOCK) // w)
    areas = np.zeros(num + 1, np.int64)
    for y in range(0, h, rows):
        areas += np.bincount(canvas.read(y, min(h, y + rows), 0, w).ravel(), minlength=num + 1)
    return areas[1:]


def measure_blocks(image: LazyImage, read_labels: Callable, boxes: np.ndarray,
                   scores: np.ndarray, classes: np.ndarray, class_names: Sequence[str],
                   outlines: bool) -> Tuple[List[Dict], Dict[int, np.ndarray]]:
    """Measurements (and outlines) of every nucleus, ``BLOCK`` by ``BLOCK``.

    Nucleus ``k`` (label ``k + 1``) lies in ``boxes[k] = (y0, x0, y1, x1)``; each
    block reads the labels and the image under the boxes that start in it.
    """
    rows, lines = [], {}
    cell = boxes[:, 0] // BLOCK * (1 + boxes[:, 1].max(initial=0) // BLOCK) + boxes[:, 1] // BLOCK
    for key in np.unique(cell):
        ids = np.flatnonzero(cell == key)  # 0-based, ascending
        y0, x0 = boxes[ids, 0].min(), boxes[ids, 1].min()
        y1, x1 = boxes[ids, 2].max(), boxes[ids, 3].max()
        region = read_labels(y0, y1, x0, x1, 1)
        pos = np.searchsorted(ids + 1, region)
        mine = (pos < len(ids)) & ((ids + 1)[np.minimum(pos, len(ids) - 1)] == region)
        local = np.where(mine, pos + 1, 0).astype(np.int32)
        pred = LabelMapPrediction(local, scores[ids], classes[ids])
        for row in measure_nuclei(pred, image.read(y0, y1, x0, x1), class_names):
            row['label'] = int(ids[row['label'] - 1] + 1)
            for column, axis in MEASURED_COORDS:
                row[column] += (y0, x0)[axis]
            rows.append(row)
        if outlines:
            for label, xy in nucleus_outlines(local).items():
                lines[int(ids[label - 1] + 1)] = xy + (x0, y0)
    rows.sort(key=lambda row: row['label'])
    return rows, dict(sorted(lines.items()))


def slide_overlay(image: LazyImage, read_labels: Callable, scores, classes) -> bytes:
    """The overlay PNG, every k-th pixel so that its longer side is at most ``OVERLAY_SIDE``."""
    h, w = image.shape[:2]
    step = -(-max(h, w) // OVERLAY_SIDE)
    labels = read_labels(0, h, 0, w, step)
    return overlay_png(image.read(0, h, 0, w, step), LabelMapPrediction(labels, scores, classes))


def slide_files(inferencer, path: str, page: int, out: str, settings: Dict,
                imagej_roi: bool = False, geojson: bool = False,
                max_pixels: Optional[int] = None, level: int = 0) -> Dict[str, object]:
    """Predict a whole-slide image; write ``out/labels/NAME.ome.zarr`` and return the
    other files (``prediction_files.image_files``'s, the overlay downsampled), the
    label folder marked :class:`~custom_modules.io.ome_zarr.PlacedFolder`."""
    import torch
    from custom_modules.inference.cluster import tiled_wrapper
    tiled = tiled_wrapper(inferencer.predictor)
    if tiled is None:
        raise ImageReadError(f'{path}: a whole-slide image is predicted by tiles, and this '
                             'model does not tile (--tile 0?)')
    name, mode = image_name(path), inferencer.input_mode
    budget = inferencer.max_pixels if max_pixels is None else max_pixels
    labels_dir = f'{out}/labels'
    with open_slide(path, page, level, budget) as image:
        h, w = image.shape[:2]
        check_pixels(path, f'{w} x {h}', h * w, budget)
        scaling = input_scaling(read_sample(image), mode)
        check_scale(inferencer.predictor, image, scaling, mode, path)
        rects, cores = tile_layout(h, w, tiled.tile_size, tiled.overlap, tiled.align)
        crops = (to_model_input(image.read(y0, y1, x0, x1), mode, scaling)
                 for y0, x0, y1, x1 in rects)
        from custom_modules.inference.tile_join import join_tiles, paste_nuclei
        with torch.no_grad():
            nuclei = join_tiles(tiled.module.predict_label_map, crops, rects, cores, (h, w),
                                tiled.map_tiles)
        os.makedirs(labels_dir, exist_ok=True)
        remove_stale_temps(labels_dir)
        canvas = DiskCanvas(f'{labels_dir}/{name}.canvas.{os.getpid()}.tmp', (h, w))
        try:
            paste_nuclei(nuclei, canvas.array, canvas.touched)
            lut, keep = relabel_table(label_areas(canvas, len(nuclei)), tiled.min_area)
            kept = np.flatnonzero(keep)
            scores = np.array([nuclei[i][3] for i in kept], np.float32)
            classes = np.array([nuclei[i][4] for i in kept], np.int64)
            boxes = np.array([(nuclei[i][0], nuclei[i][1], nuclei[i][0] + nuclei[i][2].shape[0],
                               nuclei[i][1] + nuclei[i][2].shape[1]) for i in kept],
                             np.int64).reshape(-1, 4)
            del nuclei

            def read_labels(y0, y1, x0, x1, step=1):
                return lut[canvas.read(y0, y1, x0, x1, step)]

            rows, lines = measure_blocks(image, read_labels, boxes, scores, classes,
                                         inferencer.class_names, imagej_roi or geojson)
            overlay = slide_overlay(image, read_labels, scores, classes)
            zarr_path = write_label_zarr(
                f'{labels_dir}/{name}.ome.zarr', (h, w), read_labels,
                attrs={'nucleiseg': {'source': os.path.basename(os.path.normpath(path)),
                                     'page': page, 'level': level, 'nuclei': len(kept)}})
        finally:
            canvas.close()
    files = {zarr_path: PlacedFolder(), f'{out}/overlays/{name}.png': overlay,
             f'{out}/measurements/{name}.csv': measurements_csv(name, rows),
             settings_path(out, name): settings_text(settings)}
    if imagej_roi:
        files[f'{out}/rois/{name}.zip'] = roi_zip(lines)
    if geojson:
        empty = np.zeros((0, 0), np.int32)
        files[f'{out}/geojson/{name}.geojson'] = geojson_text(
            lines, LabelMapPrediction(empty, scores, classes), inferencer.class_names)
    return files
