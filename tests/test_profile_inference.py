"""bench/profile_inference.py: the rounds' ratio table, from recorded whole-call seconds.

No model runs and no timing is asserted: the table's arithmetic only (median over the
rounds, the first model's median over each model's).
"""
from collections import defaultdict

from conftest import load_tool


def test_ratio_table_is_the_first_models_median_over_each_models(capsys):
    bench = load_tool('bench/profile_inference.py')
    shapes = [(1024, 1024), (256, 256)]
    totals = defaultdict(list)
    for seconds_a, seconds_b in ((4.0, 2.0), (5.0, 2.5), (4.2, 1.0)):  # three rounds
        totals[0, shapes[0]].append(seconds_a)
        totals[1, shapes[0]].append(seconds_b)
        totals[0, shapes[1]].append(1.0)
        totals[1, shapes[1]].append(0.5)
    bench.print_ratios(['before', 'after'], shapes, totals, rounds=3)
    lines = capsys.readouterr().out.strip().splitlines()
    assert 'median of 3 rounds' in lines[0] and '1024x1024' in lines[1]
    before, after = lines[2].split(), lines[3].split()
    assert before[:3] == ['before', '4.200', '(1.00x)']
    # medians 4.2 and 2.0: 2.10x; at 256, 1.0 over 0.5: 2.00x
    assert after == ['after', '2.000', '(2.10x)', '0.500', '(2.00x)']
