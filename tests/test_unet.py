"""The contour-aware U-Net family: targets, decoding, model, TTA over probabilities, ensembles."""
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmdet.registry import MODELS
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config

import custom_modules  # noqa: F401
from conftest import REPO, call_tool, random_label_map, render
from custom_modules.data.unet_targets import TARGET_BITS, encode_targets
from custom_modules.evaluation.metric import score_label_maps
from custom_modules.inference.ensemble import NucleusEnsemble, split_by
from custom_modules.models.unet_decode import decode_probabilities, make_decode
from custom_modules.structures.label_map import LabelMapPrediction

SMOKE = f'{REPO}/configs/dsb_unet_smoke.py'


def touching_discs(shape=(48, 64)):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    label = np.zeros(shape, np.int32)
    label[(yy - 24)**2 + (xx - 22)**2 <= 100] = 1
    label[((yy - 24)**2 + (xx - 40)**2 <= 100) & (label == 0)] = 2
    return label


def bits(code, name):
    return (code & TARGET_BITS[name]) > 0


def test_targets_mark_the_touching_border_markers_and_gap():
    label = touching_discs()
    label[2:4, 2:4] = 3  # a tiny nucleus keeps a marker pixel
    code = encode_targets(label, contour_width=2, boundary_width=2, marker_margin=2, gap_width=3)
    assert (bits(code, 'nucleus') == (label > 0)).all()
    assert not (bits(code, 'contour') & (label == 0)).any()
    boundary_cols = np.nonzero(bits(code, 'boundary'))[1]
    assert boundary_cols.min() >= 28 and boundary_cols.max() <= 34  # only where the discs touch
    for lab in (1, 2, 3):
        assert (bits(code, 'marker') & (label == lab)).any()
    markers = bits(code, 'marker')
    assert not (markers & bits(code, 'contour') & (label < 3)).any()
    assert not (bits(code, 'gap') & (label > 0)).any()


def test_targets_follow_the_augmented_masks():
    label = touching_discs()
    masks = BitmapMasks(np.stack([label == k for k in (1, 2)]), *label.shape)
    pipeline = Compose([dict(type='RandomFlip', prob=1.0, direction='horizontal'),
                        dict(type='UNetTargets')])
    out = pipeline(dict(img=np.zeros(label.shape + (3, ), np.uint8), gt_masks=masks,
                        gt_bboxes=np.zeros((2, 4), np.float32), img_shape=label.shape))
    np.testing.assert_array_equal(out['gt_seg_map'], encode_targets(label[:, ::-1]))


def probs_of(label, heads):
    code = encode_targets(label)
    return {h: bits(code, h).astype(np.float32) * 0.9 + 0.05 for h in heads}


@pytest.mark.parametrize('heads', [('nucleus', 'contour'), ('nucleus', 'boundary'),
                                   ('nucleus', 'contour', 'marker')])
@pytest.mark.parametrize('method', ['watershed', 'random_walker'])
def test_decoding_splits_touching_nuclei(heads, method):
    label = touching_discs()
    pred = decode_probabilities(probs_of(label, heads), make_decode(dict(method=method)), 10)
    assert len(pred) == 2
    assert score_label_maps(label, pred.label_map).mean() > 0.7
    assert ((pred.scores > 0.5) & (pred.scores <= 1)).all()


def test_decoding_fills_holes_drops_small_and_handles_nothing():
    label = touching_discs()
    probs = probs_of(label, ('nucleus', 'contour'))
    probs['nucleus'][24, 22] = 0.0  # a hole
    probs['nucleus'][2:4, 2:4] = 0.95  # a 4-pixel speck
    pred = decode_probabilities(probs, make_decode(None), min_area=10)
    assert len(pred) == 2 and pred.label_map[24, 22] > 0 and pred.label_map[2, 2] == 0
    empty = decode_probabilities({'nucleus': np.zeros((8, 8), np.float32)}, make_decode(None))
    assert len(empty) == 0 and empty.label_map.shape == (8, 8)
    with pytest.raises(TypeError, match='nucleus_th'):
        make_decode(dict(nucleus_th=0.4))
    with pytest.raises(ValueError, match='method'):
        make_decode(dict(method='flood'))


def smoke_model(**changes):
    cfg = Config.fromfile(SMOKE)
    cfg.model.update(changes)
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('separate', [True, False])
def test_model_trains_and_predicts_label_maps(separate):
    torch.manual_seed(0)
    model = smoke_model(separate_decoders=separate)
    label = touching_discs()
    img = torch.from_numpy(render(label, np.random.default_rng(0))[:, :, :3].transpose(2, 0, 1).copy())
    from mmdet.structures import DetDataSample
    from mmengine.structures import PixelData
    sample = DetDataSample(metainfo=dict(img_shape=label.shape, ori_shape=label.shape))
    sample.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(encode_targets(label))[None])
    data = model.data_preprocessor(dict(inputs=[img], data_samples=[sample]), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_nucleus', 'loss_contour', 'loss_marker'}
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.stem.conv.weight.grad.abs().sum() > 0
    model.eval()
    pred = model.predict_label_map(img.numpy().transpose(1, 2, 0)[:40, :50])
    assert pred.label_map.shape == (40, 50)
    assert pred.check() is pred
    samples = model(**model.data_preprocessor(dict(inputs=[img], data_samples=[sample]), False),
                    mode='predict')
    assert samples[0].pred_label_map.shape == label.shape


def test_model_refuses_bad_settings():
    with pytest.raises(ValueError, match='heads'):
        smoke_model(heads=('contour', 'nucleus'))
    with pytest.raises(TypeError, match='gap_weigth'):
        smoke_model(loss=dict(gap_weigth=2))
    with pytest.raises(ValueError, match='decoder_channels'):
        smoke_model(decoder_channels=(8, 8))


class EquivariantUNet(torch.nn.Module):
    """Probabilities from pixel brightness: equal in every flip and rotation."""
    heads = ('nucleus', 'contour')

    def test_step(self, data):
        raise NotImplementedError

    def predict_probs(self, img, out_shape=None):
        nucleus = img[:, :, 0].astype(np.float32) / 255
        import cv2
        edge = np.clip(nucleus - cv2.erode(nucleus, np.ones((3, 3), np.uint8)), 0, 1)
        probs = np.stack([nucleus, edge])
        if out_shape is not None and tuple(out_shape) != probs.shape[1:]:
            probs = np.stack([cv2.resize(p, tuple(out_shape)[::-1]) for p in probs])
        return probs

    def decode_probs(self, probs, raw=False):
        return decode_probabilities(dict(zip(self.heads, probs)), make_decode(None), 0 if raw else 10)

    def predict_label_map(self, img, out_shape=None, raw=False):
        return self.decode_probs(self.predict_probs(img, out_shape), raw)


def test_tta_averages_probabilities_in_any_view_order():
    from custom_modules.inference.tta import NucleusTTAModel
    rng = np.random.default_rng(3)
    label = random_label_map(rng, shape=(64, 72), num=8)
    img = render(label, rng)[:, :, :3]
    views = Config.fromfile(f'{REPO}/configs/dsb_unet_cpu.py').tta_model.views
    tta = NucleusTTAModel(module=EquivariantUNet(), views=views, merge='probabilities')
    single = tta.module.predict_label_map(img)
    merged = tta.predict_label_map(img)
    assert score_label_maps(single.label_map, merged.label_map).mean() > 0.95
    tta.views = tta.views[::-1]
    np.testing.assert_array_equal(tta.predict_label_map(img).label_map, merged.label_map)


def test_split_by_divides_a_merged_nucleus_only_where_the_splitter_agrees():
    label = touching_discs()
    merged = LabelMapPrediction((label > 0).astype(np.int32), np.array([0.9]), np.array([0]))
    split = split_by(merged, LabelMapPrediction(label, np.array([0.8, 0.7]), np.array([0, 0])))
    assert len(split) == 2 and score_label_maps(label, split.label_map).mean() > 0.9
    assert (split.scores == 0.9).all() and (split.label_map > 0).sum() == (label > 0).sum()
    one = np.where(label == 1, 1, 0).astype(np.int32)  # one splitter nucleus: nothing to split
    kept = split_by(merged, LabelMapPrediction(one, np.array([0.8]), np.array([0])))
    np.testing.assert_array_equal(kept.label_map, merged.label_map)


@pytest.fixture(scope='module')
def smoke_checkpoint(smoke_checkpoints):
    return smoke_checkpoints['unet']


@pytest.mark.parametrize('merge', ['consensus', 'probabilities', 'split'])
def test_ensemble_of_identical_members_equals_the_member(merge, smoke_checkpoint):
    member = dict(config=SMOKE, checkpoint=smoke_checkpoint)
    ensemble = NucleusEnsemble([member, dict(member, weight=2.0)], merge=merge, min_area=10)
    img = render(touching_discs(), np.random.default_rng(0))[:, :, :3]
    alone = ensemble.members[0].predict_label_map(img)
    together = ensemble.predict_label_map(img)
    assert score_label_maps(alone.label_map, together.label_map).mean() == pytest.approx(
        1.0 if len(alone) else 0.0) or len(alone) == len(together) == 0


def test_ensemble_refuses_bad_members(tmp_path, smoke_checkpoint):
    member = dict(config=SMOKE, checkpoint=smoke_checkpoint)
    with pytest.raises(ValueError, match='2 members'):
        NucleusEnsemble([member])
    with pytest.raises(KeyError, match='weigth'):
        NucleusEnsemble([member, dict(member, weigth=1)])
    mrcnn = dict(config=f'{REPO}/configs/dsb_mrcnn_smoke.py', checkpoint=smoke_checkpoint)
    with pytest.raises(Exception, match=smoke_checkpoint):
        NucleusEnsemble([member, mrcnn])  # a U-Net checkpoint for a Mask R-CNN


@pytest.mark.slow
def test_smoke_unet_trains_tests_with_tta_and_tiles(tmp_path, prepared_set):
    src, ann = prepared_set.src, prepared_set.ann
    data = [f'{split}_dataloader.dataset.{key}={value}'
            for split in ('train', 'val', 'test')
            for key, value in (('ann_file', f"{ann}/{'train' if split == 'train' else 'val'}"
                                            '_fold0.json'), ('data_prefix.img', f'{src}/'))]
    work = tmp_path / 'work'
    call_tool('tools/train.py', SMOKE, '--work-dir', str(work), '--cfg-options',
              'train_cfg.max_iters=2', 'train_cfg.val_interval=2', *data)
    proc = call_tool('tools/test.py', SMOKE, str(work / 'iter_2.pth'), '--tta', '--tile', '48',
                     '--work-dir', str(work), '--cfg-options', 'tile.overlap=16', *data)
    assert 'dsb/score' in proc.stdout + proc.stderr


def test_ensemble_config_runs_through_test_tool(tmp_path, prepared_set, smoke_checkpoint):
    src, ann = prepared_set.src, prepared_set.ann
    config = tmp_path / 'ensemble.py'
    config.write_text(f"""_base_ = '{REPO}/configs/dsb_ensemble_cpu.py'
model = dict(members=[dict(config='{SMOKE}', checkpoint='{smoke_checkpoint}'),
                      dict(config='{SMOKE}', checkpoint='{smoke_checkpoint}', weight=2.0)])
test_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(
    ann_file='{ann}/val_fold0.json', data_prefix=dict(img='{src}/')))
""")
    proc = call_tool('tools/test.py', str(config), '--work-dir', str(tmp_path / 'work'))
    assert 'dsb/score' in proc.stdout + proc.stderr
    proc = call_tool('tools/test.py', str(config), smoke_checkpoint, check=False)
    assert proc.returncode == 2 and 'members name their checkpoints' in proc.stderr
