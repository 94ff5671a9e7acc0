"""Tiled inference for images of any size, without seams.

Tiles of ``tile x tile`` overlap by at least ``overlap`` pixels; each tile owns
a *core* (the image cut at the middle of every overlap), so the cores tile the
image exactly. The tiles' predictions are joined into one label map by
:mod:`custom_modules.inference.tile_join`: pieces of a nucleus that two tiles
saw are linked, each nucleus comes out once and whole, and the kept nuclei are
pasted by decreasing score.

Memory is bounded by the tile plus one ``H x W`` int32 label map and the
nuclei's own mask crops; nuclei per image are not capped (a detector's
``max_per_img`` applies per tile).
"""
import functools
from typing import Callable, Optional

import numpy as np
from mmdet.registry import MODELS
from mmengine.model import BaseTTAModel

from custom_modules.inference.tile_join import TileMap, join_tiles, paste_nuclei, serial_map
from custom_modules.structures.label_map import LabelMapPrediction
from custom_modules.structures.label_ops import relabel
from custom_modules.structures.predictor import Shape, at_shape, predict_batch
from custom_modules.structures.tile_grid import (core_bounds, padded, tile_ends, tile_layout,
                                                 tile_shape, tile_starts)

__all__ = ['NucleusTiledModel', 'predict_tiled', 'core_bounds', 'tile_ends', 'tile_starts',
           'tile_shape']


def predict_tiled(predict: Callable[[np.ndarray], LabelMapPrediction], img: np.ndarray,
                  tile: int, overlap: int, min_area: int = 0, align: int = 1,
                  map_tiles: TileMap = serial_map) -> LabelMapPrediction:
    """Predict ``img`` (``H x W [x C]``) tile by tile and join the tiles seamlessly.

    Args:
        predict: any label-map predictor of one image array.
        img: the whole image.
        tile: tile side in pixels (an image thinner than a tile is cut in
            strips of its thickness: ``tile_shape``).
        overlap: least overlap of neighbouring tiles; nuclei up to about this
            size come whole from one tile, larger ones from the union of pieces.
        min_area: nuclei smaller than this after pasting go.
        align: tile starts are multiples of this (see ``tile_starts``).
        map_tiles: ``map_tiles(predict, crops)`` yields each crop's prediction in
            order: :func:`~custom_modules.inference.tile_join.serial_map`, or one
            that sends tiles to a cluster (:mod:`custom_modules.inference.cluster`).
    """
    h, w = img.shape[:2]
    rects, cores = tile_layout(h, w, tile, overlap, align)
    crops = (np.ascontiguousarray(img[y0:y1, x0:x1]) for y0, x0, y1, x1 in rects)
    nuclei = join_tiles(predict, crops, rects, cores, (h, w), map_tiles)
    label_map = np.zeros((h, w), np.int32)
    paste_nuclei(nuclei, label_map)
    label_map, kept = relabel(label_map, np.arange(len(nuclei)), min_area)
    return LabelMapPrediction(label_map,
                              np.array([nuclei[i][3] for i in kept], np.float32),
                              np.array([nuclei[i][4] for i in kept], np.int64))


@MODELS.register_module()
class NucleusTiledModel(BaseTTAModel):
    """Wrap any label-map predictor (a detector, a TTA model) to predict by tiles.

    Args:
        module: the wrapped predictor's config.
        tile_size: tile side in pixels.
        overlap: least overlap of neighbouring tiles, in pixels; nuclei up to
            this size come whole from one tile.
        tile_above: images whose longer side exceeds this are tiled, smaller
            ones predicted whole (0: tile every image larger than a tile);
            a thin strip no larger than a tile (once padded to ``align``)
            is predicted whole too.
        min_area: nuclei smaller than this after joining the tiles go.
        align: tile starts are multiples of this: the wrapped network's
            deepest stride (its ``pad_size_divisor``), so that a tile's
            feature grid is the whole image's (measured: a U-Net tile off that
            grid differed from the whole image in 18 % of its inner pixels).
        data_preprocessor: unused (the wrapped model preprocesses each tile).
    """

    def __init__(self, module: dict, tile_size: int = 512, overlap: int = 128,
                 tile_above: int = 0, min_area: int = 0, align: int = 1,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        if tile_size <= overlap or overlap < 0:
            raise ValueError(f'need 0 <= overlap ({overlap}) < tile_size ({tile_size})')
        self.tile_size = tile_size
        self.overlap = overlap
        self.tile_above = tile_above
        self.min_area = min_area
        self.align = align
        self.map_tiles = serial_map  # or a cluster's (custom_modules.inference.cluster)

    def tiles(self, img: np.ndarray) -> bool:
        """Whether ``img`` is predicted by tiles (:meth:`tiles_shape`)."""
        return self.tiles_shape(*img.shape[:2])

    def tiles_shape(self, h: int, w: int) -> bool:
        """Whether an ``h x w`` image is predicted by tiles: above ``tile_above`` and
        (padded) larger than a tile's area (a thin strip is predicted whole)."""
        return (max(h, w) > max(self.tile_above, self.tile_size)
                and padded(h, self.align) * padded(w, self.align) > self.tile_size ** 2)

    def predict_label_map(self, img: np.ndarray, out_shape: Shape = None,
                          raw: bool = False) -> LabelMapPrediction:
        """Whole below ``tile_above`` or when (padded) no larger than a tile, else by tiles
        (``raw``: raw tiles, no ``min_area``; ``out_shape``: the joined map resized)."""
        if not self.tiles(img):
            return self.module.predict_label_map(img, out_shape, raw)
        predict = functools.partial(self.module.predict_label_map, raw=True) if raw \
            else self.module.predict_label_map
        return at_shape(predict_tiled(predict, img, self.tile_size, self.overlap,
                                      0 if raw else self.min_area, self.align, self.map_tiles),
                        out_shape)

    def test_step(self, data: dict) -> list:
        return predict_batch(self, data)

    def merge_preds(self, data_samples_list):
        raise NotImplementedError('NucleusTiledModel joins its tiles itself')
