"""The model that ships with the repo finds the sample's nuclei (offline, as a user runs it)."""
import glob
import os.path as osp

import numpy as np
import pytest

from conftest import REPO
from custom_modules.inferencer import DEFAULT_CONFIG, DEFAULT_WEIGHTS, NucleusInferencer
from custom_modules.metric import score_label_maps

SAMPLE = osp.join(REPO, 'data', 'sample', 'stage1_train')
# The shipped model scored 0.3438 on these six images (2026-11-23; README, "The shipped
# model"). A model run without its normalisation falls below this (checked below).
MIN_SCORE = 0.30

needs_model = pytest.mark.skipif(not osp.isfile(osp.join(REPO, DEFAULT_WEIGHTS)),
                                 reason=f'{DEFAULT_WEIGHTS} not in this checkout')


def truths():
    import sys
    sys.path.insert(0, osp.join(REPO, 'tools'))
    from score_labels import truth_label_map
    out = {}
    for path in sorted(glob.glob(osp.join(SAMPLE, '*', 'images', '*.png'))):
        image_id = osp.basename(osp.dirname(osp.dirname(path)))
        out[path] = truth_label_map(SAMPLE, image_id, None)
    return out


@needs_model
def test_shipped_model_finds_the_samples_nuclei():
    inferencer = NucleusInferencer()
    assert inferencer.config_path.endswith(DEFAULT_CONFIG)
    scores = []
    for path, truth in truths().items():
        result = inferencer(path)[0]
        assert result['label_map'].shape == truth.shape
        scores.append(score_label_maps(truth, result['label_map']).mean())
    assert np.mean(scores) >= MIN_SCORE, scores


@needs_model
def test_a_wrong_normalisation_would_fail_the_check():
    from custom_modules.inference import innermost
    inferencer = NucleusInferencer()
    preprocessor = innermost(inferencer.predictor).data_preprocessor
    preprocessor.mean.zero_()  # raw 0..255 pixels: a pipeline that forgot to normalise
    preprocessor.std.fill_(1.0)
    scores = [score_label_maps(t, inferencer(p)[0]['label_map']).mean() for p, t in truths().items()]
    assert np.mean(scores) < MIN_SCORE, scores
