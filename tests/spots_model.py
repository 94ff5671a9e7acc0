"""A cheap tiled predictor for the whole-slide tests (bright blobs of the model input)."""
import numpy as np
import torch
from scipy import ndimage

from custom_modules.structures.label_map import LabelMapPrediction


def bright_spots(img: np.ndarray) -> LabelMapPrediction:
    """Connected components of the pixels above 127, scores falling with the label."""
    label_map, num = ndimage.label(img.max(axis=2) > 127)
    return LabelMapPrediction(label_map.astype(np.int32), np.linspace(0.9, 0.5, num),
                              np.zeros(num, np.int64))


class SpotsModule(torch.nn.Module):
    """:func:`bright_spots` as a module that ``NucleusTiledModel`` can wrap."""

    def test_step(self, data):
        raise NotImplementedError

    def predict_label_map(self, img: np.ndarray) -> LabelMapPrediction:
        return bright_spots(img)


def spots_inferencer(tile: int = 256, overlap: int = 64, mode: str = 'grey_dark', diameter=None):
    """A ``NucleusInferencer`` of tiled bright spots (rescaled when ``diameter`` is given)."""
    from custom_modules.inference.diameter import NucleusRescaledModel
    from custom_modules.inference.inferencer import NucleusInferencer
    from custom_modules.inference.tiling import NucleusTiledModel
    model = NucleusTiledModel(SpotsModule(), tile_size=tile, overlap=overlap, align=32)
    if diameter is not None:
        model = NucleusRescaledModel(model, diameter=diameter)
    return NucleusInferencer.from_predictor(model, input_mode=mode)
