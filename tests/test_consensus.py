"""The consensus merge: order-independent, majority-robust, class- and weight-aware."""
import itertools

import numpy as np
import pytest

from conftest import random_label_map
from custom_modules.evaluation.metric import score_label_maps
from custom_modules.inference.consensus import consensus_merge
from custom_modules.structures.label_map import LabelMapPrediction


def pred(label_map, scores=None, classes=None):
    n = int(label_map.max())
    scores = np.linspace(0.9, 0.6, n) if scores is None else np.asarray(scores, np.float32)
    classes = np.zeros(n, np.int64) if classes is None else np.asarray(classes)
    return LabelMapPrediction(label_map.astype(np.int32), scores.astype(np.float32), classes)


def two_touching(shape=(40, 60)):
    """Nucleus A (left, larger) and C (right) touching: their correct map and the blob."""
    right = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    right[(yy - 20) ** 2 + (xx - 20) ** 2 <= 11 ** 2] = 1
    right[((yy - 20) ** 2 + (xx - 38) ** 2 <= 7 ** 2) & (right == 0)] = 2
    blob = (right > 0).astype(np.int32)
    return right, blob


def same(a: LabelMapPrediction, b: LabelMapPrediction) -> bool:
    return (np.array_equal(a.label_map, b.label_map) and np.allclose(a.scores, b.scores)
            and np.array_equal(a.classes, b.classes))


def test_every_order_gives_the_identical_result():
    rng = np.random.default_rng(3)
    truth = random_label_map(rng, shape=(48, 64), num=8)
    inputs = []
    for k in range(5):  # noisy copies: shifted, some nuclei dropped, random scores
        noisy = np.roll(truth, rng.integers(-2, 3), axis=int(k % 2))
        noisy[noisy == rng.integers(1, truth.max() + 1)] = 0
        inputs.append(pred(noisy, rng.random(int(noisy.max())), rng.integers(0, 2, int(noisy.max()))))
    weights = [1.0, 2.0, 1.0, 0.5, 1.0]
    first = consensus_merge(inputs, weights)
    assert len(first) > 0
    for perm in itertools.islice(itertools.permutations(range(5)), 0, 120, 7):
        other = consensus_merge([inputs[i] for i in perm], [weights[i] for i in perm])
        assert same(first, other), perm


@pytest.mark.parametrize('bad_position', [0, 7, 14])
def test_majority_splits_what_one_view_merged(bad_position):
    right, blob = two_touching()
    views = [pred(right) for _ in range(14)]
    views.insert(bad_position, pred(blob, [0.99]))
    merged = consensus_merge(views)
    assert len(merged) == 2
    assert score_label_maps(right, merged.label_map).mean() == 1.0


@pytest.mark.parametrize('bad_position', [0, 14])
def test_majority_keeps_whole_what_one_view_split(bad_position):
    right, blob = two_touching()
    views = [pred(blob) for _ in range(14)]
    views.insert(bad_position, pred(right, [0.99, 0.98]))
    merged = consensus_merge(views)
    assert len(merged) == 1
    assert np.array_equal(merged.label_map > 0, blob > 0)


def test_weights_decide_between_disagreeing_inputs():
    right, blob = two_touching()
    heavy = consensus_merge([pred(right), pred(blob), pred(blob)], weights=[3.0, 1.0, 1.0])
    assert len(heavy) == 2
    light = consensus_merge([pred(right), pred(blob), pred(blob)])
    assert len(light) == 1


def test_matching_stays_within_a_class():
    right, _ = two_touching()
    merged = consensus_merge([pred(right, classes=[0, 0]), pred(right, classes=[1, 1])],
                             vote_thr=0.5)
    # Each class's nuclei have half the weight, enough at 0.5; a pixel goes to one of them.
    assert len(merged) == 2 and merged.label_map.max() == 2
    # ... but never matched across classes: a strict majority keeps none.
    assert len(consensus_merge([pred(right, classes=[0, 0]), pred(right, classes=[1, 1])],
                               vote_thr=0.6)) == 0


def test_scores_are_weighted_means_counting_a_miss_as_zero():
    right, _ = two_touching()
    only_a = right.copy()
    only_a[only_a == 2] = 0
    merged = consensus_merge([pred(right, [0.8, 0.6]), pred(only_a, [0.4])], vote_thr=0.5)
    assert len(merged) == 2
    assert np.allclose(sorted(merged.scores), [0.3, 0.6])  # C: 0.6 / 2; A: (0.8 + 0.4) / 2


def test_never_overlaps_and_checks_its_inputs():
    rng = np.random.default_rng(0)
    inputs = [pred(random_label_map(rng, shape=(40, 40), num=10)) for _ in range(4)]
    merged = consensus_merge(inputs, vote_thr=0.25, min_area=3)
    assert merged.label_map.max() == len(merged)
    assert (np.bincount(merged.label_map.ravel())[1:] >= 3).all()
    with pytest.raises(ValueError, match='one frame'):
        consensus_merge([inputs[0], pred(np.zeros((5, 5), np.int32))])
    with pytest.raises(ValueError, match='positive weights'):
        consensus_merge(inputs, weights=[1, 1, 1])
    with pytest.raises(ValueError, match='one-to-many'):
        consensus_merge(inputs, match_iou=0.3)
