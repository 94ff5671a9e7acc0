"""Post-processing: overlaps, minimum area, dilation."""
import cv2
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from custom_modules.models.instances import PostProcess, apply_postprocess, instances_to_prediction
from custom_modules.structures.label_map import LabelMapPrediction, filter_prediction, to_sample
from custom_modules.structures.label_map import resize_label_map
from custom_modules.structures.label_ops import (dilate_label_map, instances_to_label_map,
                                                 label_map_to_masks, masks_to_boxes,
                                                 resize_labels)


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

    sample = DetDataSample(metainfo=dict(ori_shape=(12, 12)))
    big = np.zeros((12, 12), bool)
    big[2:5, 2:9] = True  # covers both nuclei; lower score: keeps only 3 px, under min_area
    sample.pred_instances = InstanceData(
        masks=torch.as_tensor(np.stack([label == 1, label == 2, big])),
        scores=torch.tensor([0.5, 0.6, 0.1]), labels=torch.zeros(3, dtype=torch.long),
        bboxes=torch.zeros((3, 4)))
    post = PostProcess(min_area=4, dilation_radius=1)
    to_sample(sample, apply_postprocess(instances_to_prediction(sample, post.min_area), post))
    pred = sample.pred_instances
    masks = label_map_to_masks(sample.pred_label_map, len(pred))
    assert pred.scores.tolist() == pytest.approx([0.6, 0.5])  # label order: higher score first
    assert masks[0].sum() > 9 and masks[1].sum() > 9  # both grew
    assert np.array_equal(pred.bboxes.numpy(), masks_to_boxes(masks))


def test_filter_prediction_keeps_labels_in_any_score_order():
    """A dropped label before a kept one (the U-Net's labels are not in score order)."""
    label_map = np.array([[1, 1, 0, 2], [3, 3, 0, 2]], np.int32)
    pred = LabelMapPrediction(label_map, np.array([0.3, 0.9, 0.6], np.float32),
                              np.array([0, 1, 0]))
    out = filter_prediction(pred, 0.5)
    np.testing.assert_array_equal(out.label_map, [[0, 0, 0, 1], [2, 2, 0, 1]])
    np.testing.assert_allclose(out.scores, [0.9, 0.6])
    np.testing.assert_array_equal(out.classes, [1, 0])
    out = filter_prediction(pred, 0.5, min_area=3)  # both kept labels are 2 pixels
    np.testing.assert_array_equal(out.label_map, [[0, 0, 0, 0], [0, 0, 0, 0]])
    assert len(out.scores) == 0


def discs(shape, count, seed=0):
    """A label map of ``count`` overlapping discs of radius 2-8."""
    rng = np.random.default_rng(seed)
    label_map = np.zeros(shape, np.int32)
    for k in range(1, count + 1):
        centre = (int(rng.integers(0, shape[1])), int(rng.integers(0, shape[0])))
        cv2.circle(label_map, centre, int(rng.integers(2, 9)), k, -1)
    return label_map


def test_shrinking_labels_takes_the_label_covering_most_of_each_pixel():
    label_map = discs((137, 211), 40)
    for shape in [(68, 105), (45, 70), (137, 100), (20, 30)]:
        shares = np.stack([cv2.resize((label_map == k).astype(np.float32), shape[::-1],
                                      interpolation=cv2.INTER_AREA)
                           for k in range(label_map.max() + 1)], -1)  # OpenCV's area mean
        assert np.array_equal(resize_labels(label_map, shape), shares.argmax(-1)), shape


def test_shrinking_labels_is_not_shifted_and_keeps_the_aligned_blocks():
    label_map = np.zeros((12, 12), np.int32)
    label_map[4:8, 2:6] = 1    # aligned with 2 x 2 blocks: kept exactly
    label_map[1:3, 7:11] = 2   # two rows, an odd offset: half of each block row
    small = resize_labels(label_map, (6, 6))
    assert np.array_equal(small[2:4, 1:3], np.ones((2, 2))) and (small == 1).sum() == 4
    assert (small == 2).sum() == 0   # half-covered pixels go to the background
    # nearest neighbour samples the top-left pixel of each block: label 2 survives, shifted
    assert (cv2.resize(label_map.astype(np.float32), (6, 6),
                       interpolation=cv2.INTER_NEAREST) == 2).sum() == 2


def test_enlarging_labels_samples_each_pixel_centre():
    label_map = discs((40, 50), 6)
    big = resize_labels(label_map, (100, 125))   # 2.5x: the source pixel under (y + 0.5) / 2.5
    rows = [int((y + 0.5) / 2.5) for y in range(100)]
    cols = [int((x + 0.5) / 2.5) for x in range(125)]
    assert np.array_equal(big, label_map[rows][:, cols])


def test_resize_label_map_drops_vanished_nuclei_and_their_scores():
    label_map = np.zeros((20, 20), np.int32)
    label_map[0:8, 0:8] = 1
    label_map[10, 10] = 2                        # one pixel: gone at a quarter
    label_map[12:20, 12:20] = 3
    pred = LabelMapPrediction(label_map, np.array([0.9, 0.8, 0.7], np.float32),
                              np.array([0, 1, 2]))
    small = resize_label_map(pred, (5, 5))
    assert small.scores.tolist() == pytest.approx([0.9, 0.7]) and small.classes.tolist() == [0, 2]
    assert np.unique(small.label_map).tolist() == [0, 1, 2]
