"""Instance-mask TTA with models whose answers are known by construction."""
import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.model import BaseModel
from mmengine.structures import InstanceData

import custom_modules  # noqa: F401
from conftest import REPO, run_tool, write_layout, random_label_map
from custom_modules.datasets import NucleusDataset
from custom_modules.metric import DSBMetric
from custom_modules.tta import forward_geometry

D4_VIEWS = [dict(), dict(flip='horizontal'), dict(flip='vertical'), dict(rot90=1),
            dict(rot90=2), dict(rot90=3), dict(rot90=1, flip='horizontal'),
            dict(rot90=1, flip='vertical')]


def _set_preds(sample, masks, scores):
    n = len(masks)
    sample.pred_instances = InstanceData(
        masks=torch.as_tensor(np.asarray(masks, bool).reshape((n, ) + tuple(sample.ori_shape))),
        scores=torch.as_tensor(scores, dtype=torch.float32),
        labels=torch.zeros(n, dtype=torch.long), bboxes=torch.zeros((n, 4)))
    return sample


class _Fake(BaseModel):
    def forward(self, *args, **kwargs):
        raise NotImplementedError


@MODELS.register_module(force=True)
class ThresholdModel(_Fake):
    """Connected components of bright pixels: equivariant to flips and rotations."""

    def test_step(self, data):
        out = []
        for img, sample in zip(data['inputs'], data['data_samples']):
            n, lab = cv2.connectedComponents((img[0].numpy() > 127).astype(np.uint8))
            h, w = sample.ori_shape
            lab = cv2.resize(lab.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
            masks = lab[None] == np.arange(1, n)[:, None, None]
            out.append(_set_preds(sample, masks, np.linspace(1.0, 0.5, n - 1)))
        return out


@MODELS.register_module(force=True)
class OracleModel(_Fake):
    """Returns the ground truth, moved into the view's frame."""

    def test_step(self, data):
        out = []
        for sample in data['data_samples']:
            gt = sample.gt_instances.masks.masks
            masks = [forward_geometry(m, sample.tta_view) for m in gt]
            out.append(_set_preds(sample, masks, np.ones(len(masks))))
        return out


@MODELS.register_module(force=True)
class NoisyModel(_Fake):
    """Random overlapping boxes as masks: merging must still never overlap."""

    def test_step(self, data):
        rng = np.random.default_rng(len(data['data_samples'][0].tta_view))
        out = []
        for sample in data['data_samples']:
            h, w = sample.ori_shape
            masks = np.zeros((12, h, w), bool)
            for m in masks:
                y, x = rng.integers(0, h - 10), rng.integers(0, w - 10)
                m[y:y + rng.integers(5, 20), x:x + rng.integers(5, 20)] = True
            out.append(_set_preds(sample, masks, rng.random(12)))
        return out


@pytest.fixture(scope='module')
def tta_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('tta')
    rng = np.random.default_rng(4)
    labels = [random_label_map(rng, shape=(60 + 4 * i, 76), num=8) for i in range(4)]
    write_layout(str(root / 'src'), labels, rng=rng)
    run_tool('data_prep/prepare_dsb.py', str(root / 'src'), str(root / 'ann'), '--folds', '2')
    return str(root / 'ann' / 'full.json'), str(root / 'src') + '/'


def run_tta(model_type, views, tta_dataset, **tta_args):
    cfg = Config.fromfile(f'{REPO}/configs/dsb_mrcnn_r101.py')
    pipeline = cfg.tta_pipeline
    if views is not None:
        pipeline[-1]['views'] = views
    ann, img = tta_dataset
    dataset = NucleusDataset(ann_file=ann, data_prefix=dict(img=img), pipeline=pipeline,
                             test_mode=True)
    model = MODELS.build(dict(type='NucleusTTAModel', module=dict(type=model_type), **tta_args))
    return [model.test_step(pseudo_collate([dataset[i]]))[0] for i in range(len(dataset))]


def test_flips_and_rotations_give_identical_masks(tta_dataset):
    single = run_tta('ThresholdModel', [dict()], tta_dataset)
    merged = run_tta('ThresholdModel', D4_VIEWS, tta_dataset)
    for a, b in zip(single, merged):
        assert len(a.pred_instances) > 0
        ma, mb = a.pred_instances.masks.numpy(), b.pred_instances.masks.numpy()
        key = lambda m: m.tobytes()  # noqa: E731
        assert sorted(map(key, ma)) == sorted(map(key, mb))


def test_oracle_keeps_score_one_through_all_15_views(tta_dataset):
    outputs = run_tta('OracleModel', None, tta_dataset)
    assert len(Config.fromfile(f'{REPO}/configs/dsb_mrcnn_r101.py').tta_views) == 15
    metric = DSBMetric()
    metric.dataset_meta = dict(has_annotations=True)
    metric.process({}, [o.to_dict() for o in outputs])
    assert metric.compute_metrics(metric.results)['score'] == 1.0


def test_merged_output_never_overlaps(tta_dataset):
    for out in run_tta('NoisyModel', None, tta_dataset, vote_thr=0.1):
        masks = out.pred_instances.masks.numpy()
        assert masks.shape[1:] == tuple(out.ori_shape)
        assert masks.sum(0).max() <= 1
        assert len(masks) == len(out.pred_instances.scores)


def test_bad_view_key_fails_loudly():
    from custom_modules.tta import check_view
    with pytest.raises(KeyError, match='rotate'):
        check_view(dict(rotate=1))
    with pytest.raises(ValueError, match='flip'):
        check_view(dict(flip='diagonal'))
