"""Kaggle and COCO RLE: property tests against a per-pixel reference."""
import numpy as np
import pytest

from custom_modules.structures.rle import (coco_decode, coco_encode, coco_encode_label_map,
                                           encode_label_map, kaggle_decode, kaggle_encode,
                                           label_map_from_runs, parse_kaggle)


def reference_kaggle(mask: np.ndarray) -> str:
    """Per-pixel loop: 1-indexed, top to bottom then left to right."""
    pairs, start, length = [], None, 0
    for n, v in enumerate(mask.T.ravel(), start=1):
        if v and start is None:
            start, length = n, 1
        elif v:
            length += 1
        elif start is not None:
            pairs += [start, length]
            start = None
    if start is not None:
        pairs += [start, length]
    return ' '.join(map(str, pairs))


def test_known_string():
    mask = np.array([[0, 1], [1, 1], [0, 0]], bool)
    # column-major numbering: (0,0)=1 (1,0)=2 (2,0)=3 (0,1)=4 (1,1)=5 (2,1)=6
    assert kaggle_encode(mask) == '2 1 4 2'
    assert reference_kaggle(mask) == '2 1 4 2'


def test_thousands_of_random_label_maps():
    rng = np.random.default_rng(0)
    for trial in range(3000):
        shape = (int(rng.integers(1, 13)), int(rng.integers(1, 13)))
        label = rng.integers(0, int(rng.integers(1, 6)), size=shape).astype(np.int32)
        if trial % 7 == 0:  # edge pixels: first and last
            label.flat[0], label.T.flat[-1] = 1, 1
        encoded = encode_label_map(label)
        coco = coco_encode_label_map(label)
        assert set(encoded) == set(np.unique(label[label > 0]).tolist())
        for lab, text in encoded.items():
            mask = label == lab
            assert text == reference_kaggle(mask)
            assert np.array_equal(kaggle_decode(text, shape), mask)
            assert np.array_equal(coco_decode(coco[lab]), mask)
            assert coco[lab]['counts'] == coco_encode(mask)['counts']


def test_empty_and_full_masks():
    assert kaggle_encode(np.zeros((4, 5), bool)) == ''
    assert not kaggle_decode('', (4, 5)).any()
    assert kaggle_encode(np.ones((4, 5), bool)) == '1 20'
    assert encode_label_map(np.zeros((3, 3), np.int32)) == {}


def test_label_map_from_runs_keeps_first_owner():
    runs = [parse_kaggle('1 4', (3, 3)), parse_kaggle('3 3', (3, 3))]
    label, contested = label_map_from_runs((3, 3), runs)
    assert contested == 2
    assert label.ravel(order='F').tolist() == [1, 1, 1, 1, 2, 0, 0, 0, 0]


@pytest.mark.parametrize('text, message', [
    ('1 a', 'not an integer'), ('1 2 3', 'odd number'), ('0 2', 'below 1'),
    ('1 0', 'length < 1'), ('5 2 1 2', 'not sorted'), ('1 3 3 1', 'overlap'),
    ('8 3', 'past the image end'), ('1 99999999999999999999', 'value out of range'),
    ('99999999999999999999', 'value out of range'), ('-99999999999999999999 1', 'out of range'),
    ('9223372036854775800 100', 'value out of range'),
    ('2 9223372036854775807', 'value out of range'), ('x 99999999999999999999', 'not an integer'),
    ('-9223372036854775808 2', 'below 1')])
def test_malformed_strings(text, message):
    with pytest.raises(ValueError, match=message):
        parse_kaggle(text, (3, 3))
