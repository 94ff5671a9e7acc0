"""The competition metric on hand-computed cases."""
import numpy as np
import pytest
import torch

from custom_modules.evaluation.metric import DSBMetric, precision_at, score_label_maps
from custom_modules.structures.label_ops import label_map_iou
from mmdet.structures.mask import BitmapMasks


def square(shape, y, x, size, label=1):
    m = np.zeros(shape, np.int32)
    m[y:y + size, x:x + size] = label
    return m


def test_perfect_match_scores_one():
    gt = square((32, 32), 2, 2, 10) + square((32, 32), 18, 18, 8, 2)
    assert score_label_maps(gt, gt).tolist() == [1.0] * 10


def test_partial_overlap_by_hand():
    gt = square((32, 32), 0, 0, 10)  # 100 px
    pred = square((32, 32), 0, 2, 10)  # 80 px shared, union 120: IoU 2/3
    per_t = score_label_maps(gt, pred)
    # IoU 0.667 > 0.50, 0.55, 0.60, 0.65 -> TP=1; above -> FP=1, FN=1 -> 0
    assert per_t.tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert per_t.mean() == pytest.approx(0.4)


def test_match_must_be_strictly_above_threshold():
    gt = square((20, 20), 0, 0, 10)  # 100 px
    pred = np.zeros((20, 20), np.int32)
    pred[0:10, 0:5] = 1  # 50 px inside: IoU exactly 0.5
    assert score_label_maps(gt, pred).tolist() == [0.0] * 10


def test_missed_and_extra_nuclei():
    gt = square((32, 32), 0, 0, 8) + square((32, 32), 20, 20, 8, 2)
    one = square((32, 32), 0, 0, 8)
    assert score_label_maps(gt, one).tolist() == [0.5] * 10  # TP 1, FN 1
    extra = one + square((32, 32), 10, 10, 5, 2) + square((32, 32), 20, 20, 8, 3)
    assert score_label_maps(gt, extra).tolist() == pytest.approx([2 / 3] * 10)  # TP 2, FP 1


def test_label_numbering_gaps_are_not_instances():
    gt = square((32, 32), 0, 0, 8, 3) + square((32, 32), 20, 20, 8, 7)  # labels 3 and 7 only
    pred = square((32, 32), 0, 0, 8, 5) + square((32, 32), 20, 20, 8, 1)
    assert score_label_maps(gt, pred).tolist() == [1.0] * 10


def test_images_without_nuclei():
    empty = np.zeros((16, 16), np.int32)
    assert score_label_maps(empty, empty).tolist() == [1.0] * 10
    assert score_label_maps(empty, square((16, 16), 1, 1, 4)).tolist() == [0.0] * 10
    assert score_label_maps(square((16, 16), 1, 1, 4), empty).tolist() == [0.0] * 10


def test_iou_matrix_matches_pairwise_loop():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (30, 30))
    b = rng.integers(0, 4, (30, 30))
    iou = label_map_iou(a, b)
    for i in range(1, 5):
        for j in range(1, 4):
            inter = ((a == i) & (b == j)).sum()
            union = ((a == i) | (b == j)).sum()
            assert iou[i - 1, j - 1] == pytest.approx(inter / union)
    assert precision_at(np.zeros((0, 2))).tolist() == [0.0] * 10


def _sample(gt_label, pred_masks, scores, stratum='grey_dark/small'):
    n = int(gt_label.max())
    gt = np.stack([gt_label == k for k in range(1, n + 1)]) if n else np.zeros((0, ) + gt_label.shape)
    return dict(ori_shape=gt_label.shape, img_id=0, stratum=stratum,
                gt_instances=dict(masks=BitmapMasks(gt.astype(np.uint8), *gt_label.shape)),
                pred_instances=dict(masks=torch.as_tensor(np.asarray(pred_masks, bool)),
                                    scores=torch.as_tensor(scores, dtype=torch.float32)))


def test_metric_makes_predictions_non_overlapping_first():
    gt = square((20, 20), 2, 2, 8)
    dup = np.stack([gt > 0, gt > 0])  # the same nucleus twice: the lower score is dropped
    metric = DSBMetric(segm_ap=True)
    metric.dataset_meta = dict(classes=('nucleus', ), has_annotations=True)
    metric.process({}, [_sample(gt, dup, [0.9, 0.8])])
    metric.process({}, [_sample(gt, np.zeros((0, 20, 20)), [], 'colour/small')])
    result = metric.compute_metrics(metric.results)
    assert result['score_grey_dark'] == 1.0 and result['score_colour'] == 0.0
    assert result['score'] == pytest.approx(0.5)  # mean of 1.0 and 0.0
    assert result['P@0.50'] == pytest.approx(0.5) and 'P@0.95' in result
    assert 0.0 < result['segm_AP'] <= 1.0


def test_metric_skips_images_only_sets():
    metric = DSBMetric()
    metric.dataset_meta = dict(classes=('nucleus', ), has_annotations=False)
    metric.process({}, [_sample(square((8, 8), 0, 0, 2), np.zeros((0, 8, 8)), [])])
    assert metric.compute_metrics(metric.results) == {}


def test_metric_refuses_gt_masks_of_another_size():
    sample = _sample(square((20, 20), 2, 2, 8), np.zeros((0, 20, 20)), [])
    sample.update(ori_shape=(24, 20), img_path='stage1_train/abc/images/abc.png')
    metric = DSBMetric()
    with pytest.raises(ValueError, match=r'abc\.png.*\(20, 20\).*\(24, 20\)'):
        metric.process({}, [sample])
    assert metric.results == []


def test_thresholds_below_half_are_refused():
    gt = square((20, 20), 0, 0, 10)
    halves = square((20, 20), 0, 0, 5) + square((20, 20), 5, 0, 5, 2)  # IoU 0.5 each: scored 1.0
    with pytest.raises(ValueError, match='one-to-one'):
        score_label_maps(gt, halves, thresholds=(0.3, ))
    with pytest.raises(ValueError, match=r'>= 0\.5'):
        DSBMetric(thresholds=(0.3, 0.5))
    assert DSBMetric(thresholds=(0.5, 0.75)).thresholds == (0.5, 0.75)
