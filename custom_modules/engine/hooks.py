"""The project's hooks: test overlays for error analysis, per-iteration seeding."""
import os
import os.path as osp
from typing import Optional, Sequence

import cv2
import torch
from mmengine.hooks import Hook
from mmdet.registry import HOOKS

from custom_modules.data.datasets import mixed_seed
from custom_modules.data.image_io import read_image_file
from custom_modules.data.intensity import to_model_input
from custom_modules.io.atomic import write_atomic
from custom_modules.structures.label_map import from_sample, gt_label_map
from custom_modules.visualization.overlay import draw_overlay


@HOOKS.register_module()
class NucleusOverlayHook(Hook):
    """Write one overlay PNG per test image (``tools/test.py --show-dir``).

    Green: ground-truth outlines (when known); magenta: predicted outlines;
    the caption gives the image's competition score.

    Args:
        out_dir: output folder (relative paths go under the work dir).
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def before_test(self, runner) -> None:
        if not osp.isabs(self.out_dir):
            self.out_dir = osp.join(runner.work_dir, self.out_dir)
        os.makedirs(self.out_dir, exist_ok=True)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None,
                        outputs: Optional[Sequence] = None) -> None:
        for sample in outputs or []:
            has_gt = runner.test_dataloader.dataset.metainfo.get('has_annotations', True)
            pred_map = from_sample(sample).label_map
            gt_map = gt_label_map(sample) if has_gt else None
            img = to_model_input(read_image_file(sample.img_path))
            name = osp.splitext(osp.basename(sample.img_path))[0]
            path = osp.join(self.out_dir, name + '.png')
            ok, png = cv2.imencode('.png', draw_overlay(img, pred_map, gt_map))
            if not ok:
                raise OSError(f'{path}: OpenCV could not encode the overlay as PNG')
            write_atomic(path, png.tobytes())


@HOOKS.register_module()
class IterationSeedHook(Hook):
    """Seed torch's RNG from (run seed, iteration) before every training step.

    mmengine seeds once, at the start. A run resumed at iteration k takes up
    its data where it stopped (:mod:`custom_modules.engine.loops`), so the
    sampler order and the transforms' numpy draws are exact; but the model's
    own draws from torch's RNG (the RPN and RoI samplers) would continue from
    the state after the model was built, not after k steps. Seeded per step,
    step i draws the same numbers whether or not the run was interrupted
    before it. numpy and ``random`` are left alone: the data pipeline seeds
    them per draw.
    """

    priority = 'VERY_HIGH'

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        torch.manual_seed(mixed_seed(runner.seed, runner.iter))
