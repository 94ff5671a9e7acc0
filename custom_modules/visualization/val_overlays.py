"""Validation overlays in the visualizer's backends (TensorBoard, local PNGs).

``tools/train.py --tensorboard`` calls :func:`enable_tensorboard`, which adds
mmengine's ``TensorboardVisBackend`` beside the ``LocalVisBackend`` and a
:class:`NucleusValOverlayHook`. Validation metrics (``dsb/score``,
``dsb/P@0.50`` ... ``dsb/P@0.95``, ``dsb/score_<kind>``) reach every backend
through mmengine's ``LoggerHook``; the hook adds a few images.
"""
import os
import os.path as osp
from typing import Optional, Sequence

import cv2
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop
from mmengine.visualization import LocalVisBackend
from mmdet.registry import HOOKS, LOOPS

from custom_modules.data.image_io import read_image_file
from custom_modules.data.intensity import to_model_input
from custom_modules.structures.label_map import from_sample, gt_label_map
from custom_modules.visualization.overlay import draw_overlay

TAG_PREFIX = 'val'


@HOOKS.register_module()
class NucleusValOverlayHook(Hook):
    """Send overlays of the first validation images to the visualizer.

    Each image goes to ``runner.visualizer.add_image('val/<ImageId>', rgb,
    step=runner.iter)``: green ground-truth outlines, magenta predicted ones,
    the image's competition score in the caption. In distributed runs only
    rank 0 writes, from its own share of the validation set.

    Args:
        num_images: how many validation images to draw (the first ones).
        interval: draw at every ``interval``-th validation.
    """

    priority = 'LOW'

    def __init__(self, num_images: int = 4, interval: int = 1) -> None:
        if num_images < 0 or interval < 1:
            raise ValueError(f'need num_images >= 0 and interval >= 1, '
                             f'got {num_images} and {interval}')
        self.num_images = num_images
        self.interval = interval
        self._validations = 0
        self._drawn = 0
        self._active = False

    def before_val_epoch(self, runner) -> None:
        self._validations += 1
        self._active = (self._validations - 1) % self.interval == 0
        self._drawn = 0

    def after_val_iter(self, runner, batch_idx: int, data_batch=None,
                       outputs: Optional[Sequence] = None) -> None:
        if not self._active:
            return
        for sample in outputs or []:
            if self._drawn >= self.num_images:
                return
            self._drawn += 1
            name = osp.splitext(osp.basename(sample.img_path))[0]
            img = to_model_input(read_image_file(sample.img_path))
            overlay = draw_overlay(img, from_sample(sample).label_map, gt_label_map(sample))
            _make_local_dirs(runner.visualizer)
            runner.visualizer.add_image(f'{TAG_PREFIX}/{name}',
                                        cv2.cvtColor(overlay, cv2.COLOR_BGR2RGB),
                                        step=_step(runner))


def _step(runner) -> int:
    """The training iteration, 0 outside training (as mmengine's LoggerHook)."""
    loop = runner._train_loop
    return 0 if loop is None or isinstance(loop, dict) else runner.iter


def _make_local_dirs(visualizer) -> None:
    """Create ``vis_image/val/``: LocalVisBackend writes ``val/<name>_<step>.png``
    into it and cv2 silently skips files in missing folders."""
    for backend in getattr(visualizer, '_vis_backends', {}).values():
        if isinstance(backend, LocalVisBackend):
            os.makedirs(osp.join(backend.experiment._img_save_dir, TAG_PREFIX), exist_ok=True)


def enable_tensorboard(cfg: Config, num_images: int = 4) -> None:
    """Log to TensorBoard too: backend, validation overlays, per-iteration steps.

    Adds ``TensorboardVisBackend`` to ``cfg.visualizer.vis_backends`` and a
    :class:`NucleusValOverlayHook` to ``cfg.custom_hooks`` unless present. For
    iteration-based training it also logs validation metrics at the training
    iteration (``log_metric_by_epoch=False``) unless the config chose: at the
    epoch, every validation of an ``IterBasedTrainLoop`` lands on step 0.

    Args:
        cfg: the config, changed in place.
        num_images: validation images drawn by the added hook.
    """
    backends = list(cfg.visualizer.get('vis_backends', None) or [])
    if not any(b.get('type') == 'TensorboardVisBackend' for b in backends):
        backends.append(dict(type='TensorboardVisBackend'))
    cfg.visualizer.vis_backends = backends
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(h.get('type') == 'NucleusValOverlayHook' for h in hooks):
        hooks.append(dict(type='NucleusValOverlayHook', num_images=num_images, interval=1))
    cfg.custom_hooks = hooks
    loop = cfg.get('train_cfg', None) or {}
    logger = cfg.get('default_hooks', {}).get('logger', None)
    loop_type = loop.get('type')
    loop_cls = LOOPS.get(loop_type) if isinstance(loop_type, str) else loop_type
    # MMEngine's IterBasedTrainLoop or a subclass (ResumingIterBasedTrainLoop)
    by_iter = ((isinstance(loop_cls, type) and issubclass(loop_cls, IterBasedTrainLoop))
               or loop.get('by_epoch') is False)
    if by_iter and logger is not None and 'log_metric_by_epoch' not in logger:
        logger.log_metric_by_epoch = False
