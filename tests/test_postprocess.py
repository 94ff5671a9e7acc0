"""Post-processing: overlaps, minimum area, dilation."""
import numpy as np

from custom_modules.postprocess import (dilate_label_map, instances_to_label_map,
                                        masks_to_boxes, postprocess_instances)


def test_contested_pixels_go_to_the_higher_score():
    a = np.zeros((10, 10), bool)
    a[0:6, 0:6] = True
    b = np.zeros((10, 10), bool)
    b[4:10, 4:10] = True
    label, kept = instances_to_label_map(np.stack([a, b]), [0.3, 0.9])
    assert kept.tolist() == [1, 0]  # label 1 is the higher score
    assert label[5, 5] == 1 and (label == 2).sum() == 36 - 4


def test_min_area_drops_fragments_and_score_thr_ignores():
    a = np.zeros((10, 10), bool)
    a[0:5, 0:5] = True
    b = a.copy()
    b[0:5, 5:6] = True  # b = a plus a 5-pixel fragment
    label, kept = instances_to_label_map(np.stack([a, b]), [0.9, 0.8], min_area=6)
    assert kept.tolist() == [0] and label.max() == 1
    _, kept = instances_to_label_map(np.stack([a, b]), [0.9, 0.8], score_thr=0.85)
    assert kept.tolist() == [0]


def test_dilation_never_overlaps_or_steals():
    label = np.zeros((12, 12), np.int32)
    label[2:5, 2:5] = 1
    label[2:5, 6:9] = 2
    grown = dilate_label_map(label, 2)
    assert np.array_equal(grown[label > 0], label[label > 0])  # owned pixels stay
    assert (grown == 1).sum() > 9 and (grown == 2).sum() > 9
    masks, scores, boxes, _ = postprocess_instances(
        np.stack([label == 1, label == 2]), [0.5, 0.6], dilation_radius=1)
    assert masks.sum(0).max() == 1  # no pixel in two masks
    assert np.array_equal(boxes, masks_to_boxes(masks))
