"""Tiled inference: no seams, no duplicates, no cap on nuclei per image."""
import numpy as np
import pytest
from scipy import ndimage

from custom_modules.label_map import LabelMapPrediction
from custom_modules.metric import score_label_maps
from custom_modules.tiling import core_bounds, predict_tiled, tile_starts


def components(img: np.ndarray, cap: int = 10 ** 9) -> LabelMapPrediction:
    """A perfect crop-equivariant 'model': connected bright regions, at most ``cap``."""
    label_map, n = ndimage.label(img[..., 0] > 127)
    n = min(n, cap)
    label_map[label_map > n] = 0
    return LabelMapPrediction(label_map.astype(np.int32), np.linspace(0.9, 0.5, n).astype(np.float32),
                              np.zeros(n, np.int64))


def disc_image(shape, discs):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    img = np.zeros(shape + (3, ), np.uint8)
    for cy, cx, r in discs:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 255
    return img


@pytest.mark.parametrize('length,tile,overlap', [(100, 64, 16), (64, 64, 16), (1000, 256, 64),
                                                 (30, 64, 16), (257, 128, 32)])
def test_tiles_cover_with_overlap_and_cores_partition(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0
    assert starts[-1] + min(tile, length) == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    cores = core_bounds(starts, tile, length)
    assert cores[0][0] == 0 and cores[-1][1] == length
    assert all(a[1] == b[0] for a, b in zip(cores, cores[1:]))
    assert all(s <= c0 and c1 <= s + tile for s, (c0, c1) in zip(starts, cores))


def test_nuclei_on_tile_borders_come_out_whole_and_once():
    rng = np.random.default_rng(0)
    shape = (300, 340)
    discs = [(rng.integers(0, shape[0]), rng.integers(0, shape[1]), rng.integers(3, 9))
             for _ in range(120)]
    discs += [(150, 150, 45), (64, 200, 30), (250, 60, 25)]  # larger than the overlap
    img = disc_image(shape, discs)
    whole = components(img)
    tiled = predict_tiled(components, img, tile=96, overlap=24)
    assert len(tiled) == len(whole)
    assert score_label_maps(whole.label_map, tiled.label_map).mean() == 1.0


def test_no_cap_on_nuclei_per_image():
    discs = [(10 + 20 * i, 10 + 20 * j, 6) for i in range(40) for j in range(40)]
    img = disc_image((800, 800), discs)
    capped = components(img, cap=300)
    assert len(capped) == 300
    tiled = predict_tiled(lambda tile: components(tile, cap=300), img, tile=128, overlap=32)
    assert len(tiled) == 1600


def test_a_predictor_of_the_wrong_size_is_refused():
    img = np.zeros((200, 200, 3), np.uint8)
    with pytest.raises(ValueError, match='tile'):
        predict_tiled(lambda t: LabelMapPrediction.empty((10, 10)), img, tile=128, overlap=32)
    with pytest.raises(ValueError, match='overlap'):
        predict_tiled(components, img, tile=32, overlap=32)
