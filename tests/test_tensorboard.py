"""`tools/train.py --tensorboard`: scores, per-threshold precisions, overlays in TensorBoard."""
import glob
import os.path as osp

import pytest
from mmdet.registry import HOOKS
from mmengine.config import Config

from conftest import REPO, run_tool
from custom_modules.visualization.val_overlays import enable_tensorboard


def test_enable_tensorboard_keeps_local_backend_and_is_idempotent():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'dsb_mrcnn_smoke.py'))
    assert cfg.visualizer.type == 'DetLocalVisualizer'  # from mmdet's default_runtime
    enable_tensorboard(cfg)
    enable_tensorboard(cfg)
    types = [b['type'] for b in cfg.visualizer.vis_backends]
    assert types == ['LocalVisBackend', 'TensorboardVisBackend']
    assert [h['type'] for h in cfg.custom_hooks] == ['NucleusValOverlayHook']
    assert cfg.default_hooks.logger.log_metric_by_epoch is False  # iteration-based steps


def test_readme_config_route_keeps_the_det_visualizer(tmp_path):
    path = tmp_path / 'with_tb.py'
    path.write_text(f"_base_ = '{REPO}/configs/dsb_mrcnn_smoke.py'\n"
                    "visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), "
                    "dict(type='TensorboardVisBackend')])\n"
                    "custom_hooks = [dict(type='NucleusValOverlayHook', num_images=4, "
                    "interval=1)]\n")
    cfg = Config.fromfile(str(path))
    assert cfg.visualizer.type == 'DetLocalVisualizer'
    assert [b['type'] for b in cfg.visualizer.vis_backends] == ['LocalVisBackend',
                                                                'TensorboardVisBackend']
    hook = HOOKS.build(cfg.custom_hooks[0])
    assert (hook.num_images, hook.interval) == (4, 1)


@pytest.mark.slow
def test_train_with_tensorboard_logs_scores_and_overlays(tmp_path, prepared_set):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    src, ann = prepared_set.src, prepared_set.ann
    work = tmp_path / 'work'
    # A process of its own: mmengine's visualizer and TensorBoard writer are process-wide
    # instances, and after other in-process trainings of the suite this run wrote no events.
    run_tool('tools/train.py', 'configs/dsb_mrcnn_smoke.py', '--work-dir', str(work),
              '--tensorboard', '--cfg-options',
              'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
              f'train_dataloader.dataset.ann_file={ann}/train_fold0.json',
              f'train_dataloader.dataset.data_prefix.img={src}/',
              f'val_dataloader.dataset.ann_file={ann}/val_fold0.json',
              f'val_dataloader.dataset.data_prefix.img={src}/')

    events = glob.glob(str(work / '*' / 'vis_data' / 'events.out.tfevents.*'))
    assert len(events) == 1, events
    acc = EventAccumulator(osp.dirname(events[0]), size_guidance={'images': 0, 'scalars': 0})
    acc.Reload()
    scalars, images = acc.Tags()['scalars'], acc.Tags()['images']
    assert {'dsb/score', 'dsb/P@0.50', 'dsb/P@0.95', 'loss'} <= set(scalars), scalars
    assert [e.step for e in acc.Scalars('dsb/score')] == [2]  # the training iteration
    overlays = [t for t in images if t.startswith('val/')]
    assert 1 <= len(overlays) <= 4, images
    shot = acc.Images(overlays[0])[0]
    assert shot.step == 2 and shot.width > 0 and shot.height > 0
    # the local backend keeps PNG copies of the same overlays
    assert glob.glob(str(work / '*' / 'vis_data' / 'vis_image' / 'val' / '*_2.png'))
