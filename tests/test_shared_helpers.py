"""One implementation of each idea (issue 27): pair counts, masks to a label map, union-find,
the bright-background rule, the validated submission writer."""
import numpy as np
import pytest

from conftest import random_label_map
from custom_modules.data.image_io import image_kind
from custom_modules.data.intensity import bright_background
from custom_modules.io.submission import submission_csv
from custom_modules.models.classical import nuclei_bright
from custom_modules.structures.label_ops import (instances_to_label_map, label_map_iou,
                                                 label_overlap, masks_to_label_map)
from custom_modules.structures.union_find import UnionFind


def test_label_overlap_is_the_count_behind_the_iou():
    rng = np.random.default_rng(0)
    a = random_label_map(rng, shape=(80, 90), num=20)
    b = np.roll(random_label_map(rng, shape=(80, 90), num=25), 3, 1)
    la, lb, inter = label_overlap(a, b)
    assert (np.lexsort((lb, la)) == np.arange(len(la))).all() and (inter > 0).all()
    dense = np.zeros((a.max() + 1, b.max() + 1), np.int64)
    np.add.at(dense, (a[(a > 0) & (b > 0)], b[(a > 0) & (b > 0)]), 1)
    np.testing.assert_array_equal(dense[la, lb], inter)
    assert np.count_nonzero(dense) == len(la)
    iou = label_map_iou(a, b)
    assert np.count_nonzero(iou) == len(la)
    # many labels on both sides take the sparse path: the same pairs
    big_a, big_b = a * 1000, b * 1000
    sparse = label_overlap(big_a, big_b)
    np.testing.assert_array_equal(sparse[0], la * 1000)
    np.testing.assert_array_equal(sparse[2], inter)


def test_masks_to_label_map_first_mask_wins():
    masks = np.zeros((3, 6, 6), bool)
    masks[0, :3, :3] = masks[1, 1:5, 1:5] = True  # mask 2 (empty) keeps no pixel
    label_map = masks_to_label_map(iter(masks), (6, 6))
    assert label_map[2, 2] == 1 and label_map[4, 4] == 2 and set(np.unique(label_map)) == {0, 1, 2}
    # instances_to_label_map paints by score with it: the higher score wins
    by_score, kept = instances_to_label_map(masks, scores=np.array([0.1, 0.9, 0.5]))
    assert by_score[2, 2] == 1 and list(kept) == [1, 0]


def test_union_find_groups_by_smallest_member():
    sets = UnionFind(6)
    sets.union(4, 1)
    sets.union(5, 4)
    sets.union(2, 3)
    assert sets.find(5) == 1 and sets.groups() == [[0], [1, 4, 5], [2, 3]]


def test_one_bright_background_rule():
    dark, bright = np.full((4, 4), 20, np.uint8), np.full((4, 4), 200, np.uint8)
    assert not bright_background(dark) and bright_background(bright)
    assert not bright_background(np.zeros((0, 0), np.uint8))
    assert image_kind(bright) == 'grey_bright' and image_kind(dark) == 'grey_dark'
    assert nuclei_bright(bright).max() == 55 and nuclei_bright(dark).max() == 20


def test_submission_from_label_maps_is_validated():
    label_map = np.zeros((5, 5), np.int32)
    label_map[1:3, 1:3] = 1
    text = submission_csv([('a', label_map), ('b', np.zeros((5, 5), np.int32))])
    assert text.splitlines() == ['ImageId,EncodedPixels', 'a,7 2 12 2', 'b,']
    with pytest.raises(ValueError, match='invalid'):
        submission_csv([('a', label_map), ('a', label_map)])  # one ImageId's masks overlap
