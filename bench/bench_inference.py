"""Inference per image: one view vs dilation vs TTA, time and peak memory.

    python bench/bench_inference.py CONFIG [--checkpoint CKPT] [--sizes 256x256 1040x1388]
        [--score-thr T] [--modes single dilation tta] [--tta-views full]

The test image is a real DSB image (bundled sample) tiled to each size. Peak
memory is the process's resident set sampled every 10 ms during each mode, and
the kernel's exact maximum over the process's life so far (``ru_maxrss``).
Without a checkpoint the model gets MMDetection's own initialisation (no
ImageNet backbone, nothing downloaded); pass --score-thr low (0.05) so that it
returns up to max_per_img detections, the worst case for mask pasting and TTA
merging.
"""
import argparse
import os
import resource
import tempfile
import threading
import time

import cv2
import numpy as np
import psutil
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.dataset import Compose, pseudo_collate
from mmengine.runner import load_checkpoint

import custom_modules  # noqa: F401
from custom_modules.inference.builder import add_tta_arguments, predictor_cfg
from custom_modules.inference.model_zoo import load_config

SAMPLE = 'data/sample/stage1_train/2a2032c4ed78f3fc64de7e5efd0bec26a81680b07404eaa54a1744b7ab3f8365/images/2a2032c4ed78f3fc64de7e5efd0bec26a81680b07404eaa54a1744b7ab3f8365.png'  # noqa: E501


class PeakRSS:
    """Sample the resident set size in a thread; ``peak`` in MiB."""

    def __enter__(self):
        self.proc, self.peak, self.running = psutil.Process(), 0, True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss / 2 ** 20)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def tiled_image(path, size):
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    h, w = size
    reps = (int(np.ceil(h / img.shape[0])), int(np.ceil(w / img.shape[1])), 1)
    return np.tile(img, reps)[:h, :w]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config')
    parser.add_argument('--checkpoint')
    parser.add_argument('--sizes', nargs='+', default=['256x256', '1040x1388'])
    parser.add_argument('--score-thr', type=float, help='override test_cfg.rcnn.score_thr')
    parser.add_argument('--modes', nargs='+', default=['single', 'dilation', 'tta'])
    parser.add_argument('--dilation-radius', type=int, default=2)
    add_tta_arguments(parser, flag=False)
    args = parser.parse_args(argv)
    register_all_modules(init_default_scope=True)
    torch.set_grad_enabled(False)
    cfg = load_config(args.config)  # fills the fields of configs/_base_
    if args.score_thr is not None:
        cfg.model.test_cfg.rcnn.score_thr = args.score_thr
    if not args.checkpoint:
        cfg.model.backbone.init_cfg = None  # offline: no ImageNet download
    model = MODELS.build(cfg.model).eval()
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    else:
        model.init_weights()
    try:  # the TTA of tools/test.py, around the model built above
        tta = MODELS.build(dict(predictor_cfg(cfg, tta=args.tta, tile=0), module=model)).eval()
    except KeyError as err:
        parser.error(str(err.args[0]))
    pipeline = Compose(cfg.test_pipeline)  # the TTA model makes its views from this batch
    base_post = model.postprocess
    print(f'config {args.config}, checkpoint {args.checkpoint or "none (MMDetection init, no ImageNet)"}, '
          f'score_thr {cfg.model.test_cfg.rcnn.score_thr}, torch threads {torch.get_num_threads()}, '
          f'{len(tta.views)} TTA views', flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            h, w = map(int, size.split('x'))
            path = os.path.join(tmp, f'{size}.png')
            cv2.imwrite(path, tiled_image(SAMPLE, (h, w)))
            item = dict(img_path=path, img_id=0, instances=[])
            times = {}
            for mode in args.modes:
                model.postprocess = base_post._replace(
                    dilation_radius=args.dilation_radius) if mode == 'dilation' else base_post
                with PeakRSS() as mem:
                    t0 = time.perf_counter()
                    runner = tta if mode == 'tta' else model
                    out = runner.test_step(pseudo_collate([pipeline(dict(item))]))
                    times[mode] = time.perf_counter() - t0
                n = len(out[0].pred_instances)
                ratio = times[mode] / times.get('single', times[mode])
                life_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(f'{size} {mode}: {times[mode]:7.2f} s  ({ratio:5.1f}x single)  '
                      f'peak RSS {mem.peak:7.0f} MiB (process max so far {life_max:.0f} MiB)  '
                      f'nuclei {n}', flush=True)
    model.postprocess = base_post


if __name__ == '__main__':
    main()
