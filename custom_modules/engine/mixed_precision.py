"""bfloat16 mixed precision for training on a CPU that computes bfloat16 natively.

MMEngine's ``AmpOptimWrapper`` runs on GPUs only. :class:`CPUBFloat16OptimWrapper`
is the plain ``OptimWrapper`` whose forward (the model's losses) runs under
``torch.autocast('cpu', torch.bfloat16)``: oneDNN's convolutions and matrix
products then take bfloat16 inputs (float32 weights and optimizer state stay, so
no loss scaling: bfloat16 has float32's range). Worth it only where the CPU has
bfloat16 instructions (AVX512-BF16 or AMX: on the U-Net recipe 1.58x a step,
BENCHMARKS.md "Where an iteration goes"); elsewhere they are emulated and slower,
so ``bf16='auto'`` turns it on only there.
"""
from contextlib import contextmanager
from typing import Optional, Union

import torch
from mmengine.optim import OptimWrapper
from mmdet.registry import OPTIM_WRAPPERS


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX tiles)."""
    cpu = getattr(torch, 'cpu', None)
    checks = ('_is_avx512_bf16_supported', '_is_amx_tile_supported')
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_bf16(bf16: Union[bool, str]) -> bool:
    """``True``/``False`` as given; ``'auto'``: :func:`cpu_has_native_bf16`."""
    if bf16 == 'auto':
        return cpu_has_native_bf16()
    if isinstance(bf16, bool):
        return bf16
    raise ValueError(f"bf16 must be True, False or 'auto', got {bf16!r}")


@OPTIM_WRAPPERS.register_module()
class CPUBFloat16OptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under CPU bfloat16 autocast.

    Args:
        optimizer: the optimizer (built by the runner).
        accumulative_counts: as ``OptimWrapper``.
        clip_grad: as ``OptimWrapper``.
        bf16: ``'auto'`` (on where :func:`cpu_has_native_bf16`), ``True`` or ``False``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, accumulative_counts: int = 1,
                 clip_grad: Optional[dict] = None, bf16: Union[bool, str] = 'auto') -> None:
        super().__init__(optimizer, accumulative_counts=accumulative_counts, clip_grad=clip_grad)
        self.bf16 = resolve_bf16(bf16)

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16,
                                                         enabled=self.bf16):
            yield
