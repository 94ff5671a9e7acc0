"""block_majority: a label map shrunk by a whole factor, each block to its most frequent label."""
import cv2
import numpy as np
import pytest

from custom_modules.structures.label_ops import block_majority


@pytest.mark.parametrize('k', [2, 3, 4])
def test_undoes_an_exact_enlargement(k):
    rng = np.random.default_rng(k)
    small = rng.integers(0, 6, (37, 23)).astype(np.int32)
    big = cv2.resize(small, (23 * k, 37 * k), interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(block_majority(big, k, rows=5), small)


def test_the_majority_wins_and_background_counts():
    big = np.array([[1, 1, 0, 2],
                    [1, 0, 0, 2],
                    [3, 3, 4, 4],
                    [0, 0, 4, 0]], np.int32)
    assert block_majority(big, 2).tolist() == [[1, 0], [3, 4]]  # ties: the first pixel's


def test_factor_one_and_ragged_edges():
    big = np.arange(30, dtype=np.int32).reshape(5, 6)
    assert block_majority(big, 1) is big
    assert block_majority(big, 2).shape == (2, 3)
