"""Every model that ships with the repo finds the sample's nuclei (offline, as a user runs it)."""
import glob
import os.path as osp

import numpy as np
import pytest

from conftest import REPO
from custom_modules.evaluation.metric import score_label_maps
from custom_modules.inference import model_zoo
from custom_modules.inference.inferencer import NucleusInferencer

SAMPLE = osp.join(REPO, 'data', 'sample', 'stage1_train')
# Each model must reproduce the sample score its metrics.json records (sample.score) within
# this. For nucleiseg_mrcnn (0.3438 on 2026-11-29, before the test-time RPN floor and
# RoIAlign sampling of 2026-12-03; 0.3480 since) the floor was 0.3423, which each wrong
# variant measured on the six images misses: RGB read as BGR 0.3409, the normalisation's
# mean/std in the other channel order 0.3379, no normalisation 0.0036, the 'rgb' input mode
# instead of 'grey_dark' 0.1857; thresholds.json absent (the recipe's 0.5 / 0.5 / 10) 0.3360,
# or with score_thr 0.5 0.3406, 0.99 0.2229, mask_thr_binary 0.5 0.3353, 0.3 0.3417,
# min_area 100 0.2798, score and mask swapped (0.45 / 0.9) 0.1850. (min_area 10 scores
# 0.3493 here: the thresholds were tuned on fold 0, not on these six; test_model_zoo checks
# that the file's values are the ones the model uses.) The floor is tight on purpose: a
# different CPU could move it by a nucleus; re-measure and update metrics.json if so.
SAMPLE_TOLERANCE = 0.0015
MODELS = model_zoo.list_models()


def truths(limit=None):
    """``{image path: true label map}`` of the sample's images, the first ``limit`` of them."""
    import sys
    sys.path.insert(0, osp.join(REPO, 'tools'))
    from score_labels import truth_label_map
    out = {}
    for path in sorted(glob.glob(osp.join(SAMPLE, '*', 'images', '*.png')))[:limit]:
        image_id = osp.basename(osp.dirname(osp.dirname(path)))
        out[path] = truth_label_map(SAMPLE, image_id, None)
    return out


def sample_score(inferencer, limit=None) -> float:
    scores = []
    for path, truth in truths(limit).items():
        result = inferencer(path)[0]
        assert result['label_map'].shape == truth.shape
        scores.append(score_label_maps(truth, result['label_map']).mean())
    return float(np.mean(scores))


def test_the_default_model_ships():
    assert model_zoo.DEFAULT_MODEL in MODELS, f'no {model_zoo.DEFAULT_MODEL} in {MODELS}'


@pytest.mark.slow
@pytest.mark.parametrize('name', MODELS)
def test_every_shipped_model_scores_the_sample(name):
    recorded = (model_zoo.read_metrics(osp.join(model_zoo.MODELS_DIR, name)).get('sample', None)
                or {}).get('score', None)
    assert recorded is not None, f'model_zoo/{name}/metrics.json: no sample.score recorded'
    inferencer = NucleusInferencer(name)
    assert inferencer.weights_path.endswith(model_zoo.WEIGHTS)
    score = sample_score(inferencer)
    assert score >= recorded - SAMPLE_TOLERANCE, (name, score, recorded)


def unnormalised(inferencer):
    """``inferencer`` with every network fed raw 0..255 pixels (a pipeline that forgot to
    normalise), an ensemble's members too."""
    from custom_modules.structures.predictor import innermost
    model = innermost(inferencer.predictor)
    for net in [innermost(m) for m in getattr(model, 'members', [model])]:
        net.data_preprocessor.mean.zero_()
        net.data_preprocessor.std.fill_(1.0)
    return inferencer


@pytest.mark.skipif(model_zoo.DEFAULT_MODEL not in MODELS, reason='no default model')
def test_a_wrong_normalisation_fails_the_floor_on_one_image():
    # the fast tier's form of the next test: the sample's first image alone scores under the
    # whole sample's floor (a few seconds, where the six images take the slow tier's time)
    recorded = model_zoo.read_metrics(osp.join(model_zoo.MODELS_DIR, model_zoo.DEFAULT_MODEL))
    assert sample_score(unnormalised(NucleusInferencer()), limit=1) < (
        recorded['sample']['score'] - SAMPLE_TOLERANCE)


@pytest.mark.slow
@pytest.mark.skipif(model_zoo.DEFAULT_MODEL not in MODELS, reason='no default model')
def test_a_wrong_normalisation_would_fail_the_check():
    recorded = model_zoo.read_metrics(osp.join(model_zoo.MODELS_DIR, model_zoo.DEFAULT_MODEL))
    assert sample_score(unnormalised(NucleusInferencer())) < (
        recorded['sample']['score'] - SAMPLE_TOLERANCE)
