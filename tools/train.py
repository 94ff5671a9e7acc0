"""Train a nucleus detector: MMDetection's tools/train.py, with the same flags.

    python tools/train.py configs/dsb_mrcnn_r101.py [--work-dir DIR] [--resume [CKPT]]
        [--amp] [--auto-scale-lr] [--tensorboard] [--cfg-options KEY=VALUE ...] [--launcher pytorch]
        [--trust-pickle]

Multi-GPU: torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch
(without a CUDA GPU the processes share the CPUs over gloo). A missing config
or data file, a misspelt --cfg-options key, or a --resume checkpoint that is
missing, truncated, of another model or pickling more than data (unless
--trust-pickle) stops it with one line and exit code 2.
"""
import argparse
import os
import os.path as osp
import sys

from mmdet.registry import MODELS
from mmengine.config import DictAction
from mmengine.registry import RUNNERS, init_default_scope
from mmengine.runner import Runner, find_latest_checkpoint

from custom_modules.engine.checkpoint import (CheckpointError, check_state_fits,
                                              load_checkpoint_file, trust_pickled_code)
from custom_modules.engine.config_check import check_data_paths
from custom_modules.engine.distributed import (exit_process, setup_cpu_distributed,
                                               shutdown_distributed)
from custom_modules.inference.model_zoo import load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a nucleus detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision: float16 on a CUDA GPU, bfloat16 on a CPU with AVX512-BF16 or AMX')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the LR by the total batch size over auto_scale_lr.base_batch_size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir when '
                        'no path is given')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='resume (or load_from) a checkpoint that pickles more than tensors '
                        'and data (unpickling it can run code: only for files you trust)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--tensorboard', action='store_true',
                        help='also log to TensorBoard (work_dir/<timestamp>/vis_data): losses, '
                        'validation scores and overlays of the first validation images')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args, parser


def check_resume(cfg, path: str, auto: bool) -> None:
    """Refuse a checkpoint to resume that is missing, truncated or of another model.

    mmengine resumes one of another model with warnings only (``strict=False``).

    Args:
        cfg: the merged config (its model is built to compare keys and shapes).
        path: the checkpoint.
        auto: it was found through the work dir's ``last_checkpoint``.

    Raises:
        ValueError: naming the file (:class:`CheckpointError` is one).
    """
    if not osp.isfile(osp.expanduser(path)):
        where = f'{osp.join(cfg.work_dir, "last_checkpoint")} names' if auto else '--resume'
        raise ValueError(f'{where} {path}: no such checkpoint file')
    ckpt = load_checkpoint_file(path)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    try:
        check_state_fits(MODELS.build(cfg.model), ckpt, path)
    except CheckpointError as err:
        raise CheckpointError(f'--resume {err}') from None


def main(argv=None):
    args, parser = parse_args(argv)
    trust_pickled_code(args.trust_pickle)  # --resume, and mmengine's load_from
    try:
        cfg = load_config(args.config, args.cfg_options)
    except ValueError as err:
        parser.error(str(err))
    cfg.launcher = args.launcher

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        import torch
        from custom_modules.engine.mixed_precision import cpu_has_native_bf16
        cfg.optim_wrapper.pop('bf16', None)
        if torch.cuda.is_available():
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
        elif cpu_has_native_bf16():
            cfg.optim_wrapper.type = 'CPUBFloat16OptimWrapper'
            cfg.optim_wrapper.bf16 = True
        else:
            parser.error('--amp needs a CUDA GPU (mmengine AmpOptimWrapper) or a CPU with '
                         'bfloat16 instructions (AVX512-BF16 or AMX); this machine has neither')

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            parser.error('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True

    if args.tensorboard:
        from custom_modules.visualization.val_overlays import enable_tensorboard
        enable_tensorboard(cfg)

    resume_from = None
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
        resume_from = find_latest_checkpoint(cfg.work_dir)  # None: mmengine starts afresh
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = resume_from = args.resume
    try:
        if resume_from is not None:
            check_resume(cfg, resume_from, auto=args.resume == 'auto')
        check_data_paths(cfg, ('train_dataloader', 'val_dataloader'))
        distributed_note = setup_cpu_distributed(cfg, args.launcher)
    except ValueError as err:
        parser.error(str(err))

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if distributed_note:
        runner.logger.info(distributed_note)
    runner.train()
    del runner  # its DDP wrapper holds the process group
    shutdown_distributed()
    return 0


if __name__ == '__main__':
    exit_process(main())
