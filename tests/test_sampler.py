"""The stratum-balanced oversampler sees every stratum equally often; its draws carry
their own seeds, so a resumed run skips draws without loading them."""
from collections import Counter

from custom_modules.data.datasets import SeededDraw, StratumBalancedSampler


class _Infos:
    def __init__(self, strata):
        self.strata = strata

    def __len__(self):
        return len(self.strata)

    def get_data_info(self, idx):
        return dict(stratum=self.strata[idx])


def test_rare_strata_are_oversampled_and_seed_fixes_order():
    strata = ['grey'] * 900 + ['colour'] * 90 + ['bright'] * 10
    sampler = StratumBalancedSampler(_Infos(strata), seed=0)
    counts = Counter()
    for epoch in range(5):
        sampler.set_epoch(epoch)
        counts.update(strata[draw.index] for draw in sampler)
    total = sum(counts.values())
    assert total == 5 * len(strata)
    for stratum in ('grey', 'colour', 'bright'):
        assert abs(counts[stratum] / total - 1 / 3) < 0.03, counts
    again = StratumBalancedSampler(_Infos(strata), seed=0)
    again.set_epoch(4)
    sampler.set_epoch(4)
    assert list(again) == list(sampler)


def test_a_skipped_epoch_continues_with_the_same_draws_and_seeds():
    strata = ['grey'] * 30 + ['colour'] * 10
    sampler = StratumBalancedSampler(_Infos(strata), seed=7)
    sampler.set_epoch(3)
    whole = list(sampler)
    assert all(isinstance(d, SeededDraw) for d in whole)
    assert len({d.seed for d in whole}) == len(whole)  # a seed per position, not per image
    sampler.skip(13)
    assert list(sampler) == whole[13:]
    assert list(sampler) == whole  # the skip served one iteration
    sampler.set_epoch(4)
    assert not {d.seed for d in sampler} & {d.seed for d in whole}


def test_ranks_share_the_world_draws_and_seeds(monkeypatch):
    strata = ['grey'] * 9 + ['colour'] * 3
    world = StratumBalancedSampler(_Infos(strata), seed=1)
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr('custom_modules.data.datasets.get_dist_info', lambda r=rank: (r, 2))
        shares.append(list(StratumBalancedSampler(_Infos(strata), seed=1)))
    assert shares[0] == list(world)[0::2] and shares[1] == list(world)[1::2]
