"""Test a nucleus segmenter: MMDetection's tools/test.py, with the same flags.

    python tools/test.py CONFIG [CHECKPOINT] [--tta | --tta-views full] [--tile N]
        [--diameter auto|PIXELS|none]
        [--out preds.pkl] [--show-dir DIR] [--work-dir DIR] [--cfg-options KEY=VALUE ...]
        [--trust-pickle]

On a labelled set it prints the competition score (and COCO segm AP). On an
images-only JSON from data_prep it only predicts; keep them with --out.
Images larger than the config's ``tile.tile_above`` are predicted by tiles; each image is
first rescaled to the training nucleus size (``--diameter``, README "Any nucleus size").
An ensemble config (``NucleusEnsemble``) names its members' checkpoints and
takes no CHECKPOINT; with --tta each member uses its own config's TTA.
Several processes: torchrun --nproc_per_node=N tools/test.py ... --launcher pytorch
(gloo on the CPUs without a CUDA GPU).
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from custom_modules.engine.checkpoint import CheckpointError, trust_pickled_code
from custom_modules.engine.config_check import check_data_paths
from custom_modules.engine.distributed import (exit_process, setup_cpu_distributed,
                                               shutdown_distributed)
from custom_modules.inference.builder import (add_tta_arguments, is_ensemble, load_weights,
                                              predictor_cfg)
from custom_modules.inference.model_zoo import load_config
from custom_modules.io.atomic import check_can_write


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a nucleus segmenter')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file (none for an ensemble '
                        'config, whose members name theirs)')
    parser.add_argument('--work-dir', help='the dir for the evaluation logs')
    parser.add_argument('--out', help='dump predictions to this pickle (input of tools/export_rle.py)')
    parser.add_argument('--show-dir', help='write overlays (outlines, score) here; relative paths '
                        'go under the work dir')
    add_tta_arguments(parser)
    parser.add_argument('--tile', type=int, help='predict by tiles of N x N pixels (overlap: the '
                        "config's tile.overlap); 0: never tile; default: the config's tile "
                        'settings, which tile large images only')
    parser.add_argument('--diameter', default='auto',
                        help="nucleus diameter in pixels, 'auto' (default: estimated per image and "
                        "the image rescaled to the model's training size) or 'none'")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. test_dataloader.dataset.ann_file=...')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='load checkpoints that pickle more than tensors and data '
                        '(unpickling them can run code: only for files you trust)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args, parser


def main(argv=None):
    args, parser = parse_args(argv)
    trust_pickled_code(args.trust_pickle)  # the checkpoint, and an ensemble's members
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error('--out must be a .pkl or .pickle file')
    try:
        cfg = load_config(args.config, args.cfg_options)
        if is_ensemble(cfg) and args.checkpoint is not None:
            raise ValueError(f'{args.config} is an ensemble: its members name their '
                             'checkpoints; give no CHECKPOINT')
        for member in cfg.model.get('members', []) if is_ensemble(cfg) else []:
            for key in ('config', 'checkpoint'):
                if not osp.isfile(str(member.get(key))):
                    raise ValueError(f'ensemble member {key} {member.get(key)}: no such file '
                                     f'(named in {args.config})')
        if not is_ensemble(cfg) and args.checkpoint is None:
            raise ValueError('the CHECKPOINT argument is missing')
        if args.checkpoint is not None and not osp.isfile(args.checkpoint):
            raise ValueError(f'{args.checkpoint}: no such checkpoint file')
        check_can_write([args.out] if args.out else [])
    except (ValueError, OSError) as err:
        parser.error(f'--out {err}' if isinstance(err, OSError) else str(err))
    cfg.launcher = args.launcher

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = None  # loaded below, into the network inside the wrappers, and checked

    if args.show_dir:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='NucleusOverlayHook', out_dir=args.show_dir)]
    try:
        cfg.model = predictor_cfg(cfg, tta=args.tta, tile=args.tile, diameter=args.diameter)
    except (KeyError, ValueError) as err:
        parser.error(str(err.args[0]))
    try:
        check_data_paths(cfg, ('test_dataloader', ))
        distributed_note = setup_cpu_distributed(cfg, args.launcher)
    except ValueError as err:
        parser.error(str(err))

    try:  # builds the model: bad per-class thresholds, an ensemble member that does not load
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    except (CheckpointError, KeyError, ValueError) as err:
        print(f'error: {args.config}: {err}', file=sys.stderr)
        return 2
    if distributed_note:
        runner.logger.info(distributed_note)
    try:
        if args.checkpoint is not None:
            load_weights(runner.model, args.checkpoint)
    except (CheckpointError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if args.out is not None:
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    runner.test()
    del runner  # its DDP wrapper holds the process group
    shutdown_distributed()
    return 0


if __name__ == '__main__':
    exit_process(main())
