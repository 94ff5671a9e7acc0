"""The stratum-balanced oversampler sees every stratum equally often."""
from collections import Counter

from custom_modules.data.datasets import StratumBalancedSampler


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
        counts.update(strata[i] for i in sampler)
    total = sum(counts.values())
    assert total == 5 * len(strata)
    for stratum in ('grey', 'colour', 'bright'):
        assert abs(counts[stratum] / total - 1 / 3) < 0.03, counts
    again = StratumBalancedSampler(_Infos(strata), seed=0)
    again.set_epoch(4)
    sampler.set_epoch(4)
    assert list(again) == list(sampler)
