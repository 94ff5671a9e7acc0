"""Resume equals uninterrupted: the smoke config, killed and resumed.

Exact on a CPU: the smoke config fixes ``randomness.seed``; the stratum sampler's
draws carry their own augmentation seeds, so the resumed loop starts them where
it stopped without loading the trained batches (other samplers: MMEngine replays
them, the transforms' numpy draws with them); ``IterationSeedHook`` seeds torch's
RNG (RPN and RoI samplers) per iteration. The CPU kernels are deterministic for a
given thread count.
"""
from types import SimpleNamespace

import pytest
import torch

from conftest import REPO, call_tool
from custom_modules.engine.hooks import IterationSeedHook

# The smoke config on the synthetic set, without validation (not under test).
CONFIG = """_base_ = '{repo}/configs/dsb_mrcnn_smoke.py'
train_dataloader = dict(dataset=dict(ann_file='{root}/ann/train_fold0.json',
                                     data_prefix=dict(img='{root}/stage1_train/')){sampler})
val_dataloader = None
val_cfg = None
val_evaluator = None
default_hooks = dict(checkpoint=dict(interval=2, save_best=None, max_keep_ckpts=-1))
"""
# MMEngine's shuffling sampler, whose draws carry no seeds: a resume replays them.
SHUFFLED = (",\n                        "
            "sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True)")


@pytest.fixture(scope='module')
def data_root(prepared_set, tmp_path_factory):
    """Eight synthetic images and their data_prep JSONs (four train, four val), linked
    from the session's into a folder for this module's configs and work dirs."""
    root = tmp_path_factory.mktemp('resume')
    for name in ('stage1_train', 'ann'):
        (root / name).symlink_to(prepared_set.root / name)
    return root


def config(root, sampler: str = '') -> str:
    """Write the smoke config pointed at ``root``'s data; return its path."""
    path = root / f'smoke{"_shuffled" if sampler else ""}.py'
    path.write_text(CONFIG.format(repo=REPO, root=root, sampler=sampler))
    return str(path)


def train(cfg: str, work, iters: int, resume: bool = False, options=()) -> str:
    """Train to ``iters`` (resuming the work dir's latest checkpoint); return the log."""
    args = ['tools/train.py', cfg, '--work-dir', str(work)] + (['--resume'] if resume else [])
    proc = call_tool(*args, '--cfg-options', f'train_cfg.max_iters={iters}', *options)
    return proc.stdout + proc.stderr


def assert_same_checkpoint(path_a, path_b) -> None:
    """Weights and the optimizer's state (SGD momentum, AdamW moments) equal tensor by
    tensor, exactly."""
    a, b = (torch.load(p, map_location='cpu', weights_only=False) for p in (path_a, path_b))
    assert a['meta']['iter'] == b['meta']['iter']
    assert a['state_dict'].keys() == b['state_dict'].keys()
    differ = [k for k, v in a['state_dict'].items() if not torch.equal(v, b['state_dict'][k])]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:3]}'
    moments = [(v, b['optimizer']['state'][i][k]) for i, s in a['optimizer']['state'].items()
               for k, v in s.items() if torch.is_tensor(v)]
    assert moments and all(torch.equal(x, y) for x, y in moments)


@pytest.fixture(scope='module')
def straight(data_root):
    """The smoke config trained 4 iterations in one go."""
    work = data_root / 'straight'
    train(config(data_root), work, 4)
    return work / 'iter_4.pth'


@pytest.mark.slow
def test_two_straight_runs_give_identical_weights(data_root, straight):
    work = data_root / 'again'
    train(config(data_root), work, 4)
    assert_same_checkpoint(straight, work / 'iter_4.pth')


@pytest.mark.slow
def test_resume_replays_a_sampler_that_cannot_skip(data_root):
    cfg = config(data_root, SHUFFLED)
    train(cfg, data_root / 'shuffled', 4)
    train(cfg, data_root / 'shuffled_split', 2)
    log = train(cfg, data_root / 'shuffled_split', 4, resume=True)
    assert 'resumed epoch: 0, iter: 2' in log and 'Advance dataloader 2 steps' in log
    assert_same_checkpoint(data_root / 'shuffled' / 'iter_4.pth',
                           data_root / 'shuffled_split' / 'iter_4.pth')


@pytest.mark.slow
def test_resume_mid_epoch_with_the_stratum_sampler_loads_nothing_it_skips(data_root):
    """Four images, two per batch: iteration 3 is the second batch of epoch 1. The resumed
    half loads in two persistent workers, the straight run in the main process (the draws'
    own seeds make the loader irrelevant), and its config leaves the seed to chance (it
    takes the checkpoint's)."""
    cfg = config(data_root)  # the recipes' sampler; randomness.seed=0
    train(cfg, data_root / 'stratum', 5)
    split = ['default_hooks.checkpoint.interval=3']
    train(cfg, data_root / 'stratum_split', 3, options=split)
    later = ['train_dataloader.num_workers=2', 'train_dataloader.persistent_workers=True',
             'randomness.seed=None']
    log = train(cfg, data_root / 'stratum_split', 5, resume=True, options=split + later)
    assert 'Resumed the data at epoch 1, batch 1: 3 batches skipped' in log
    assert 'Advance dataloader' not in log
    assert_same_checkpoint(data_root / 'stratum' / 'iter_5.pth',
                           data_root / 'stratum_split' / 'iter_5.pth')


def test_iteration_seed_hook_ignores_what_came_before():
    hook = IterationSeedHook()

    def draws(iteration, burn):
        torch.rand(burn)  # whatever earlier iterations consumed
        hook.before_train_iter(SimpleNamespace(seed=0, iter=iteration), iteration)
        return torch.rand(4)

    assert torch.equal(draws(3, 0), draws(3, 17))
    assert not torch.equal(draws(3, 0), draws(4, 0))
    hook.before_train_iter(SimpleNamespace(seed=1, iter=3), 3)
    assert not torch.equal(torch.rand(4), draws(3, 0))
