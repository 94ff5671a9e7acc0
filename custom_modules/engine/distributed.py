"""Multi-process training and testing without a CUDA GPU (gloo on CPUs).

mmengine 0.10.7 assumes GPUs for ``--launcher pytorch``: its configs name the
NCCL backend (GPU only), its ``init_dist`` calls ``torch.cuda.set_device``
(absent from a CPU-only torch) whatever the backend, and its DDP wrapper
passes ``device_ids=[LOCAL_RANK]``, which DDP refuses for a model on the CPU.
:func:`setup_cpu_distributed` works around all three, before the runner is built.
"""
import datetime
import gc
import logging
import os
import sys
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

TORCHRUN_VARS = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


def setup_cpu_distributed(cfg, launcher: str) -> Optional[str]:
    """Without a CUDA GPU, run a distributed job over gloo on the CPUs.

    Sets ``cfg.env_cfg.dist_cfg.backend = 'gloo'``, starts the process group
    from torchrun's environment (mmengine then skips its own, CUDA-only start)
    and has the DDP wrapper built with ``device_ids=None``. Does nothing with
    ``launcher == 'none'`` or when a GPU is there.

    Args:
        cfg: the loaded config, changed in place.
        launcher: ``--launcher`` of the tools.

    Returns:
        One line for the log, or None when nothing was changed.

    Raises:
        ValueError: a launcher other than ``pytorch``, or processes not
            started by torchrun (its environment variables missing).
    """
    if launcher == 'none' or torch.cuda.is_available():
        return None
    if launcher != 'pytorch':
        raise ValueError(f'--launcher {launcher} needs a CUDA GPU (mmengine selects a CUDA '
                         'device); without one start the processes with torchrun and '
                         '--launcher pytorch')
    missing = [name for name in TORCHRUN_VARS if name not in os.environ]
    if missing:
        raise ValueError(f'--launcher pytorch: {", ".join(missing)} not set; start the '
                         'processes with `torchrun --nproc_per_node=N` (or python -m '
                         'torch.distributed.run)')
    env_cfg = dict(cfg.get('env_cfg', None) or {})
    dist_cfg = dict(env_cfg.get('dist_cfg', None) or {}, backend='gloo')
    cfg.env_cfg = dict(env_cfg, dist_cfg=dist_cfg)
    wrapper = dict(cfg.get('model_wrapper_cfg', None) or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False)))
    kind = wrapper.get('type', 'MMDistributedDataParallel')
    kind = kind if isinstance(kind, type) else MODEL_WRAPPERS.get(kind)
    if kind is not None and issubclass(kind, DistributedDataParallel):
        wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
    if not torch_dist.is_initialized():
        timeout = dist_cfg.get('timeout', None)
        kwargs = dict(timeout=datetime.timedelta(seconds=timeout)) if timeout else {}
        torch_dist.init_process_group(backend='gloo', **kwargs)
    return (f'no CUDA GPU: distributed over the gloo backend on the CPU, '
            f'{torch_dist.get_world_size()} processes')


def shutdown_distributed() -> None:
    """Close the process group while the interpreter is whole.

    With a live group, collects garbage first: the runner's DDP wrapper (a
    reference cycle through its loops) holds the group and tensors, and left to
    interpreter shutdown their destruction can abort a rank after its work is done.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        gc.collect()
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def exit_process(code: int) -> None:
    """End a tool's process with ``code``; a torchrun rank skips interpreter teardown.

    A gloo rank's C++ threads and sockets outlive Python's finalization order,
    so a finished rank can still die with SIGABRT there (torchrun then fails the
    whole job). Output is flushed and logs closed before ``os._exit``.
    """
    if 'TORCHELASTIC_RUN_ID' not in os.environ:
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
