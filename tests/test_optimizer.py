"""The CPU recipes' optimizer step: fused AdamW and foreach clipping, the plain step's arithmetic."""
import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper

import custom_modules  # noqa: F401
from conftest import REPO
from custom_modules.inference.model_zoo import load_config


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.GroupNorm(2, 8),
                               torch.nn.Conv2d(8, 2, 1))


def _train(net: torch.nn.Module, optim_cfg: dict, steps: int = 12) -> torch.nn.Module:
    """``steps`` optimizer steps on the same seeded gradients (large: clipping acts)."""
    wrapper = build_optim_wrapper(net, copy.deepcopy(optim_cfg))
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in net.parameters():
            p.grad = 10.0 * torch.randn(p.shape, generator=gen)
        wrapper.step()
        wrapper.zero_grad()
    return net


@pytest.mark.parametrize('config', ['dsb_mrcnn_cpu_mnv2.py', 'dsb_unet_cpu.py'])
def test_recipes_step_fused_and_match_the_plain_step(config):
    cfg = load_config(f'{REPO}/configs/{config}').optim_wrapper
    cfg = dict(cfg, type='OptimWrapper')  # bf16 changes the forward only, not the step
    cfg.pop('bf16', None)
    assert cfg['optimizer']['fused'] is True and cfg['clip_grad']['foreach'] is True
    plain = dict(cfg, optimizer=dict(cfg['optimizer'], fused=False),
                 clip_grad=dict(cfg['clip_grad'], foreach=False))
    fused, reference = _train(_net(), cfg), _train(_net(), plain)
    for a, b in zip(fused.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert any((a != b).any() for a, b in zip(fused.parameters(), _net().parameters()))
