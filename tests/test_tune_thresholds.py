"""Per-class Mask R-CNN thresholds and tools/tune_thresholds.py (synthetic data, tiny models)."""
import pickle
import re

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData

import custom_modules  # noqa: F401
from conftest import REPO, call_tool
from custom_modules.inference.builder import load_weights, predictor_cfg
from custom_modules.inference.model_zoo import read_thresholds
from custom_modules.models.instances import SoftInstances, instances_to_prediction
from custom_modules.tuning.tuner import (Scorer, capture, coordinate_descent, model_settings,
                                         tta_spec)
from custom_modules.inference.model_zoo import load_config

MRCNN = f'{REPO}/configs/dsb_mrcnn_smoke.py'
UNET = f'{REPO}/configs/dsb_unet_smoke.py'


def soft(shape, boxes, crops, scores, classes) -> SoftInstances:
    return SoftInstances(shape, np.asarray(scores, np.float32), np.asarray(classes, np.int64),
                         np.asarray(boxes, np.int32),
                         np.concatenate([np.asarray(c, np.uint8).ravel() for c in crops]))


def ring_crop(size=8, core=255, ring=100):
    """A square soft mask: ``core`` inside, ``ring`` on its 1-pixel border."""
    crop = np.full((size, size), ring, np.uint8)
    crop[1:-1, 1:-1] = core
    return crop


def test_each_class_has_its_own_score_and_mask_cutoffs():
    # Three classes side by side; each instance's ring is 100/255 (~0.39), its core 255.
    boxes = [(0, 0, 8, 8), (0, 10, 8, 18), (0, 20, 8, 28), (10, 0, 18, 8), (10, 10, 18, 18)]
    inst = soft((20, 30), boxes, [ring_crop()] * 5, scores=[0.6, 0.75, 0.65, 0.45, 0.65],
                classes=[0, 1, 2, 0, 1])
    pred = instances_to_prediction(inst, score_thr=[0.5, 0.7, 0.6], mask_thr=[0.3, 0.5, 0.35])
    # kept: 0 (0.6 > 0.5), 1 (0.75 > 0.7), 2 (0.65 > 0.6); gone: 3 (0.45 < 0.5), 4 (0.65 < 0.7)
    assert pred.scores.tolist() == pytest.approx([0.75, 0.65, 0.6])
    assert pred.classes.tolist() == [1, 2, 0]
    areas = np.bincount(pred.label_map.ravel(), minlength=4)[1:]
    assert areas.tolist() == [36, 64, 64]  # class 1 cuts at 0.5: core only; 0 and 2 keep the ring
    # one number for all classes, and a data sample with dense soft masks, agree
    dense = np.zeros((5, 20, 30), np.uint8)
    for k, (y0, x0, y1, x1) in enumerate(boxes):
        dense[k, y0:y1, x0:x1] = ring_crop()
    sample = DetDataSample(metainfo=dict(ori_shape=(20, 30)))
    sample.pred_instances = InstanceData(masks=torch.from_numpy(dense), scores=torch.from_numpy(
        inst.scores), labels=torch.from_numpy(inst.classes), bboxes=torch.zeros(5, 4))
    one = instances_to_prediction(sample, score_thr=0.62, mask_thr=0.5, max_per_img=2)
    assert one.scores.tolist() == pytest.approx([0.75, 0.65]) and (one.label_map > 0).sum() == 72


def smoke_mrcnn_cfg(num_classes=1, **rcnn):
    cfg = Config.fromfile(MRCNN)
    cfg.model.roi_head.bbox_head.num_classes = num_classes
    cfg.model.roi_head.mask_head.num_classes = num_classes
    cfg.model.test_cfg.rcnn.update(rcnn)
    return cfg


def test_per_class_lists_build_predict_and_a_wrong_length_is_refused():
    with pytest.raises(ValueError, match=r'score_thr has 2 values .*num_classes=1'):
        MODELS.build(smoke_mrcnn_cfg(score_thr=[0.5, 0.7]).model)
    with pytest.raises(ValueError, match=r'mask_thr_binary has 2 values .*num_classes=3'):
        MODELS.build(smoke_mrcnn_cfg(3, mask_thr_binary=[0.5, 0.6]).model)
    def build(thr, masks):  # the same untrained weights each time
        torch.manual_seed(0)
        cfg = smoke_mrcnn_cfg(3, score_thr=thr, mask_thr_binary=masks)
        return cfg, MODELS.build(cfg.model).eval()

    img = np.random.default_rng(0).integers(0, 255, (48, 56, 3), dtype=np.uint8)
    masks = [0.3, 0.4, 0.35]  # untrained soft masks sit near 0.5: below it they survive
    low = build([0.0] * 3, masks)[1].predict_instances(img, score_thr=0.0, max_per_img=0)
    # Untrained scores cluster (about 0.25 for 3 classes + background): each class's
    # median keeps half of it, and the three differ, so one threshold would keep more.
    thr = [float(np.median(low.scores[low.classes == c])) + 1e-6 for c in range(3)]
    cfg, model = build(thr, masks)
    assert cfg.model.test_cfg.rcnn.score_thr == thr  # the config is left as given
    assert model.thresholds.score.tolist() == pytest.approx(thr)
    pred = model.predict_label_map(img, raw=True)
    expect = instances_to_prediction(low, 0, thr, masks, max_per_img=50)
    np.testing.assert_array_equal(pred.label_map, expect.label_map)
    assert set(pred.classes.tolist()) == {0, 1, 2}
    assert (pred.scores > np.array(thr)[pred.classes]).all()
    assert len(pred) < (low.scores > min(thr)).sum()  # one threshold would have kept more


def constructed_cache():
    """Two classes: class 0 true nuclei score 0.9, its false ones 0.55; class 1: 0.5 and 0.2.

    True nuclei are 8 x 8 squares whose ring of 100/255 lies outside the truth.
    """
    images = []
    for i in range(3):
        gt = np.zeros((30, 40), np.uint16)
        boxes, scores, classes = [], [], []
        for k, (y, x, cls) in enumerate([(1, 1, 0), (1, 12, 1), (12, 1, 0), (12, 12, 1)]):
            gt[y + 1:y + 7, x + 1:x + 7] = k + 1
            boxes.append((y, x, y + 8, x + 8))
            scores.append(0.9 if cls == 0 else 0.5)
            classes.append(cls)
        for y, cls in ((2, 0), (14, 1)):  # false positives on the background
            boxes.append((y, 28, y + 8, 36))
            scores.append(0.55 if cls == 0 else 0.2)
            classes.append(cls)
        inst = soft(gt.shape, boxes, [ring_crop()] * len(boxes), scores, classes)
        images.append(dict(name=f'img{i}', gt=gt, raw=[inst]))
    return dict(family='mask_rcnn', tta=None, images=images)


def test_the_search_finds_better_per_class_thresholds():
    scorer = Scorer(constructed_cache(), MODELS.build(Config.fromfile(MRCNN).model))
    start = dict(score_thr=(0.05, 0.05), mask_thr=(0.3, 0.3), max_per_img=100, min_area=0,
                 dilation=0)
    grids = dict(score_thr=(0.1, 0.3, 0.6), mask_thr=(0.3, 0.5), max_per_img=(100, ),
                 min_area=(0, 10), dilation=(0, 1))
    best, score, trials = coordinate_descent(scorer.score, start, grids, progress=lambda m: None)
    assert trials[0][1] < 0.5 and score == pytest.approx(1.0)
    assert best['score_thr'] == (0.6, 0.3) and best['mask_thr'] == (0.5, 0.5)
    # one threshold for both classes cannot separate them: the per-class one is a real gain
    shared = [dict(best, score_thr=(t, t)) for t in grids['score_thr']]
    assert max(scorer.score(shared)) < 1.0


@pytest.fixture(scope='module')
def labelled(prepared_set, smoke_checkpoints, tmp_path_factory):
    """Synthetic labelled data (data_prep JSONs), and untrained smoke checkpoints.

    The session's data are linked into this module's folder, which takes what the
    tests write.
    """
    root = tmp_path_factory.mktemp('tune')
    for name in ('stage1_train', 'ann', 'images_only'):
        (root / name).symlink_to(prepared_set.root / name)
    return root, str(root / 'stage1_train'), smoke_checkpoints


def config_value(cfg: dict, key: str):
    for part in key.split('.'):
        cfg = cfg[part]
    return cfg


def data_options(root, src, loaders=('val', 'test'), ann='ann/val_fold0.json'):
    return [f'{loader}_dataloader.dataset.{key}={value}' for loader in loaders
            for key, value in (('ann_file', f'{root}/{ann}'), ('data_prefix.img', f'{src}/'))]


def tuned_and_tested(root, src, config, checkpoint, *extra):
    """Tune (printing the winner's score), then test the tuned config: both scores."""
    out = root / f'{config.split("/")[-1][:-3]}_tuned.py'
    thresholds = root / f'{config.split("/")[-1][:-3]}_thresholds.json'
    proc = call_tool('tools/tune_thresholds.py', config, checkpoint, '--out-config', str(out),
                     '--out-thresholds', str(thresholds), *extra,
                     '--cfg-options', *data_options(root, src, ('val', )))
    tuned = float(re.search(r'tuned score: ([0-9.]+)', proc.stdout).group(1))
    base = float(re.search(r"config's own settings: ([0-9.]+)", proc.stdout).group(1))
    text = out.read_text()
    assert '_base_ = ' in text and f'{root}/ann/val_fold0.json' in text  # says what it tuned on
    # thresholds.json holds the same winners, under the config keys the tuned config sets
    tuned_cfg = Config.fromfile(str(out)).to_dict()
    settings = read_thresholds(str(thresholds))
    assert settings and all(config_value(tuned_cfg, k) == v for k, v in settings.items())
    test = call_tool('tools/test.py', str(out), checkpoint, '--work-dir', str(root / 'work'),
                     '--diameter', 'none',  # the tuner scores the images as they are
                     '--cfg-options', *data_options(root, src, ('test', )))
    tested = float(re.search(r'dsb/score: ([0-9.]+)', test.stdout + test.stderr).group(1))
    return proc, out, base, tuned, tested


def test_the_tuned_config_reproduces_the_tuners_score(labelled):
    root, src, checkpoints = labelled
    cache = root / 'raw.pkl'
    proc, out, base, tuned, tested = tuned_and_tested(
        root, src, MRCNN, checkpoints['mrcnn'], '--raw-cache', str(cache))
    assert tuned >= base and round(tuned, 4) == tested, proc.stdout
    assert 'score_thr[0]' not in proc.stdout and 'min_area' in proc.stdout  # the table

    # label map for label map: the tuned model predicts what the tuner scored
    cfg = load_config(str(out), dict(o.split('=', 1) for o in data_options(root, src, ('val', ))))
    model = MODELS.build(cfg.model).eval()
    load_weights(model, checkpoints['mrcnn'])
    with open(cache, 'rb') as f:
        scorer = Scorer(pickle.load(f), model)
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    for i, (_, (pred, )) in enumerate(scorer.predictions([model_settings(model)])):
        img = dataset[i]['inputs'].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(model.predict_label_map(img).label_map, pred.label_map)

    # a rerun with other grids reads the cache and does not predict again
    again = call_tool('tools/tune_thresholds.py', MRCNN, checkpoints['mrcnn'], '--raw-cache',
                      str(cache), '--out-config', str(root / 'again.py'), '--grid',
                      'score_thr=0.3,0.5', 'dilation=0', '--cfg-options',
                      *data_options(root, src, ('val', )))
    assert 'predicting' not in again.stdout and 'tuned score' in again.stdout
    stale = call_tool('tools/tune_thresholds.py', MRCNN, checkpoints['mrcnn'], '--tta',
                      '--raw-cache', str(cache), '--cfg-options',
                      *data_options(root, src, ('val', )), check=False)
    assert stale.returncode == 2 and 'another tta' in stale.stderr
    stale = call_tool('tools/tune_thresholds.py', MRCNN, checkpoints['mrcnn'], '--tta-views',
                      'full', '--raw-cache', str(cache), '--cfg-options',
                      *data_options(root, src, ('val', )), check=False)
    assert stale.returncode == 2 and 'another tta' in stale.stderr


def test_tta_views_are_cached_so_the_vote_is_tuned_as_the_tta_model_votes(labelled):
    root, src, checkpoints = labelled
    cfg = load_config(MRCNN, dict(o.split('=', 1) for o in data_options(root, src, ('val', ))))
    cfg.model.test_cfg.rcnn.score_thr = 0.5  # untrained: scores of about 0.5
    cfg.tta_model.update(views=[dict(), dict(shift=(2, 2, 2)), dict(flip='horizontal')],
                         vote_thr=0.3)
    model = MODELS.build(predictor_cfg(cfg, tta=True, tile=0)).eval()
    load_weights(model, checkpoints['mrcnn'])
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    items = [dataset[0], dataset[1]]
    cache = dict(family='mask_rcnn', tta=tta_spec(model),
                 images=capture(model, items, 0.05, progress=lambda m: None))
    assert [len(image['raw']) for image in cache['images']] == [3, 3]  # one per view
    own = model_settings(model)
    other = dict(own, mask_thr=(0.45, ), vote_thr=0.6, min_area=5, dilation=1)
    scored = list(Scorer(cache, model.module).predictions([own, other]))
    for settings, k in ((own, 0), (other, 1)):
        model.vote_thr = settings['vote_thr']
        model.module.thresholds = model.module.thresholds._replace(
            score=np.array(settings['score_thr']), mask=np.array(settings['mask_thr']))
        model.post = model.post._replace(min_area=settings['min_area'],
                                         dilation_radius=settings['dilation'])
        found = 0
        for item, (_, preds) in zip(items, scored):
            pred = model.predict_label_map(item['inputs'].permute(1, 2, 0).numpy())
            np.testing.assert_array_equal(pred.label_map, preds[k].label_map)
            found += len(pred)
        assert found > 0


def test_unet_thresholds_are_tuned_and_reproduced(labelled):
    root, src, checkpoints = labelled
    proc, out, base, tuned, tested = tuned_and_tested(root, src, UNET, checkpoints['unet'],
                                                      '--float32', '--rounds', '1')
    assert 'nucleus_thr' in proc.stdout and 'marker_thr' in proc.stdout
    assert 'decode=dict(' in out.read_text()
    assert tuned >= base and round(tuned, 4) == tested, proc.stdout


def test_refuses_data_without_ground_truth_ensembles_and_bad_grids(labelled):
    root, src, checkpoints = labelled
    images_only = data_options(root, src, ('val', ), ann='images_only/full.json')
    proc = call_tool('tools/tune_thresholds.py', MRCNN, checkpoints['mrcnn'], '--cfg-options',
                     *images_only, check=False)
    assert proc.returncode == 2 and 'no ground truth' in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if 'error' in line]) == 1
    proc = call_tool('tools/tune_thresholds.py', f'{REPO}/configs/dsb_ensemble_cpu.py',
                     checkpoints['mrcnn'], check=False)
    assert proc.returncode == 2 and 'ensemble' in proc.stderr
    proc = call_tool('tools/tune_thresholds.py', MRCNN, checkpoints['mrcnn'], '--grid',
                     'nucleus_thr=0.5', '--cfg-options', *data_options(root, src, ('val', )),
                     check=False)
    assert proc.returncode == 2 and 'score_thr' in proc.stderr  # names the keys it knows
    proc = call_tool('tools/tune_thresholds.py', MRCNN, checkpoints['mrcnn'], '--tta-views',
                     'nope', '--cfg-options', *data_options(root, src, ('val', )), check=False)
    assert proc.returncode == 2 and 'no view set tta_views_nope' in proc.stderr
    assert 'full' in proc.stderr  # names the sets it has
