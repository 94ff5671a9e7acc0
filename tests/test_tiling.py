"""Tiled inference: no seams, no duplicates, no cap on nuclei per image."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from custom_modules.evaluation.metric import score_label_maps
from custom_modules.inference import tile_join, tiling
from custom_modules.inference.tiling import core_bounds, predict_tiled, tile_ends, tile_starts
from custom_modules.structures.label_map import LabelMapPrediction


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


@pytest.mark.parametrize('length', [100, 603, 1000, 1272, 2000, 5001])
@pytest.mark.parametrize('tile,overlap,align', [(512, 128, 64), (1024, 256, 32), (96, 24, 32),
                                                (128, 32, 1)])
def test_aligned_tiles_cover_with_overlap(length, tile, overlap, align):
    starts = tile_starts(length, tile, overlap, align)
    ends = tile_ends(starts, tile, length)
    assert starts[0] == 0 and ends[-1] == length and starts == sorted(set(starts))
    assert all(s % align == 0 for s in starts)
    assert all(e - s <= tile + align - 1 for s, e in zip(starts, ends))
    assert all(a_end - b >= min(overlap, length) for a_end, b in zip(ends, starts[1:]))
    cores = core_bounds(starts, tile, length)
    assert cores[0][0] == 0 and cores[-1][1] == length
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(cores, cores[1:]))


def test_aligned_tiles_join_as_exactly():
    rng = np.random.default_rng(1)
    discs = [(rng.integers(0, 300), rng.integers(0, 340), rng.integers(3, 9)) for _ in range(100)]
    img = disc_image((300, 340), discs)
    tiled = predict_tiled(components, img, tile=96, overlap=24, align=32)
    assert score_label_maps(components(img).label_map, tiled.label_map).mean() == 1.0


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


def test_memory_release_between_tiles_is_safe_without_glibc(monkeypatch):
    img = disc_image((300, 300), [(40 + 60 * i, 40 + 60 * j, 12) for i in range(4) for j in range(4)])
    with_trim = predict_tiled(components, img, tile=96, overlap=24)
    monkeypatch.setattr(tile_join, '_malloc_trim', lambda: None)  # musl, macOS: nothing to call
    tile_join.release_freed_memory()
    without = predict_tiled(components, img, tile=96, overlap=24)
    assert np.array_equal(with_trim.label_map, without.label_map) and len(without) == 16


def test_two_tiles_that_see_a_pair_differently_leave_no_sliver():
    """One tile merges two touching nuclei, its neighbour splits them: one view stands whole."""
    img = disc_image((160, 240), [(80, 103, 12), (80, 129, 12)])  # 2 px apart
    img[5, 5] = 100  # only the left tile [0, 160) holds this marker

    def moody(crop):
        binary = crop[..., 0] > 127
        if crop[5, 5, 0] != 100:
            pred = components(crop)
            return pred.replace(scores=np.full(len(pred), 0.6, np.float32))
        blob = ndimage.binary_erosion(binary).astype(np.int32)  # both as one, 1 px smaller
        return LabelMapPrediction(blob, np.full(1, 0.9, np.float32), np.zeros(1, np.int64))

    assert len(moody(img[:, :160])) == 1 and len(moody(img[:, 80:])) == 2
    tiled = predict_tiled(moody, img, tile=160, overlap=80)
    areas = np.bincount(tiled.label_map.ravel())[1:]
    assert len(tiled) == 1 and areas.min() > 300, areas  # the merged view, no 1-px ring beside it


def test_cut_views_of_a_nucleus_the_middle_tile_missed_leave_no_fragments():
    """Rows of tiles [0, 160), [80, 240), [160, 320): the middle row holds the nucleus
    at y 140-180 whole and misses it; the rows above and below each see half of it,
    cut by their border, in two columns that agree. Neither half is a nucleus."""
    img = disc_image((320, 240), [(160, 120, 20), (40, 40, 10)])
    img[80, 0] = img[80, 80] = 100  # the middle row's tiles start here

    def misses_in_the_middle_row(crop):
        if crop[0, 0, 0] == 100:
            return LabelMapPrediction.empty(crop.shape[:2])
        return components(crop)

    tiled = predict_tiled(misses_in_the_middle_row, img, tile=160, overlap=80)
    assert len(tiled) == 1 and tiled.label_map[40, 40] > 0 and tiled.label_map[160, 120] == 0
    # found by the middle row, it comes out whole, once
    assert score_label_maps(components(img).label_map,
                            predict_tiled(components, img, tile=160, overlap=80).label_map).mean() == 1


class ShapeRecorder(torch.nn.Module):
    """A stub predictor: bright components, and the shape of every array it is given."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def test_step(self, data):  # what mmengine's TTA wrapper asks of its module
        raise NotImplementedError

    def predict_label_map(self, img, out_shape=None, raw=False):
        self.shapes.append(img.shape[:2])
        return components(img)


def test_thin_strips_are_cut_in_strips_not_square_tiles():
    rng = np.random.default_rng(2)
    discs = [(int(rng.integers(10, 30)), int(rng.integers(0, 20000)), 4) for _ in range(150)]
    strip = disc_image((40, 20000), discs)
    stub = ShapeRecorder()
    tiled = predict_tiled(stub.predict_label_map, strip, tile=512, overlap=128, align=64)
    assert all(h == 40 for h, _ in stub.shapes)  # no taller than the image
    assert min(w for _, w in stub.shapes) >= 512 * 512 // 64  # a square tile's pixels, padded
    assert len(stub.shapes) <= 6  # not the ~63 tiles of 40 x 512 (before: one per 321 px)
    assert score_label_maps(components(strip).label_map, tiled.label_map).mean() == 1.0
    stub.shapes.clear()
    predict_tiled(stub.predict_label_map, np.ascontiguousarray(strip.transpose(1, 0, 2)),
                  tile=512, overlap=128, align=64)
    assert all(w == 40 for _, w in stub.shapes) and len(stub.shapes) <= 6  # a column too


def test_tiled_model_predicts_a_strip_no_larger_than_a_tile_whole():
    stub = ShapeRecorder()
    model = tiling.NucleusTiledModel(module=stub, tile_size=512, overlap=128, align=64)
    for shape in ((3, 4000), (100, 2000), (4000, 3)):  # padded to 64: <= 512 x 512 pixels
        model.predict_label_map(np.zeros(shape + (3, ), np.uint8))
    assert stub.shapes == [(3, 4000), (100, 2000), (4000, 3)]
    stub.shapes.clear()
    model.predict_label_map(np.zeros((3, 100000, 3), np.uint8))  # larger: strips of 3 x 4,096
    assert {h for h, _ in stub.shapes} == {3} and 24 <= len(stub.shapes) <= 30
    assert max(w for _, w in stub.shapes) <= 4096 + 63
