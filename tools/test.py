"""Test a nucleus detector: MMDetection's tools/test.py, with the same flags.

    python tools/test.py CONFIG CHECKPOINT [--tta] [--out preds.pkl] [--show-dir DIR]
        [--work-dir DIR] [--cfg-options KEY=VALUE ...]

On a labelled set it prints the competition score (and COCO segm AP). On an
images-only JSON from data_prep it only predicts; keep them with --out.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a nucleus detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir for the evaluation logs')
    parser.add_argument('--out', help='dump predictions to this pickle (input of tools/export_rle.py)')
    parser.add_argument('--show-dir', help='write overlays (outlines, score) here; relative paths '
                        'go under the work dir')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (tta_model, '
                        'tta_pipeline of the config)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. test_dataloader.dataset.ann_file=...')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args, parser


def main():
    args, parser = parse_args()
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error('--out must be a .pkl or .pickle file')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint

    if args.show_dir:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='NucleusOverlayHook', out_dir=args.show_dir)]

    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            parser.error(f'{args.config} defines no tta_model/tta_pipeline')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.out is not None:
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()
