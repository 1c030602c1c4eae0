"""vitlab/train/schedule.py: linear warm-up then cosine, against values worked by hand."""
import math

import pytest

from vitlab.train.schedule import warmup_cosine

BASE, MIN = 1e-3, 1e-5
TOTAL, WARMUP = 111, 10  # cosine span = TOTAL - WARMUP - 1 = 100 steps


def lr(step, total=TOTAL, warmup=WARMUP, base=BASE, min_lr=MIN):
    return warmup_cosine(step, total_steps=total, warmup_steps=warmup, base_lr=base, min_lr=min_lr)


def test_warmup_is_linear_from_base_over_warmup_steps():
    assert lr(0) == pytest.approx(BASE / WARMUP)  # first step: 1e-4
    assert lr(4) == pytest.approx(5e-4)
    assert lr(WARMUP - 1) == pytest.approx(BASE)  # last warm-up step reaches the base
    diffs = [lr(s + 1) - lr(s) for s in range(WARMUP - 1)]
    assert diffs == pytest.approx([BASE / WARMUP] * (WARMUP - 1))


def test_end_of_warmup_is_base():
    assert lr(WARMUP) == pytest.approx(BASE)


def test_cosine_midpoint_and_quarter_points():
    assert lr(WARMUP + 50) == pytest.approx((BASE + MIN) / 2)
    # progress 1/4: min + (base-min)(1+cos(pi/4))/2 = 1e-5 + 0.5*0.99e-3*(1+0.70710678) = 8.5502e-4
    assert lr(WARMUP + 25) == pytest.approx(8.55018e-4, rel=1e-5)
    assert lr(WARMUP + 75) == pytest.approx(1e-5 + 0.5 * 0.99e-3 * (1 - math.sqrt(0.5)))


def test_last_step_is_min_lr():
    assert lr(TOTAL - 1) == pytest.approx(MIN)
    assert lr(TOTAL + 50) == pytest.approx(MIN)  # clamped past the end


def test_monotone_decay_after_warmup():
    values = [lr(s) for s in range(WARMUP, TOTAL)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert all(MIN <= v <= BASE for v in values)


def test_no_warmup_starts_at_base():
    assert lr(0, warmup=0) == pytest.approx(BASE)
    assert lr(TOTAL - 1, warmup=0) == pytest.approx(MIN)
    assert lr(55, warmup=0) == pytest.approx((BASE + MIN) / 2)  # span 110, midpoint 55


def test_constant_when_min_equals_base():
    assert {lr(s, min_lr=BASE) for s in range(WARMUP, TOTAL)} == {BASE}


def test_single_step_run():
    assert lr(0, total=1, warmup=0) == pytest.approx(BASE)


def test_a_time_budget_holds_the_whole_epochs_that_fit_at_the_first_epochs_pace():
    from vitlab.train.schedule import epochs_within

    assert epochs_within(900, 100.0, most=15) == 9  # 9 x 100 s fit 900 s
    assert epochs_within(900, 61.0, most=15) == 14  # 14.75 -> 14: never past the budget
    assert epochs_within(900, 30.0, most=15) == 15  # the budget holds more than optim.epochs: optim.epochs
    assert epochs_within(10, 25.0, most=15) == 1  # the first epoch is trained already
    assert epochs_within(900, 0.0, most=15) == 15  # no measurable time: nothing to cut


def test_a_time_budget_counts_the_first_epoch_as_it_was_and_the_rest_at_its_later_pace():
    """A compiled run's first epoch carries the compile: 130 s, of which the steps after the first few ran at a
    pace of 80 s an epoch. 900 s hold the first epoch and (900 - 130) / 80 = 9.6 -> 9 more."""
    from vitlab.train.schedule import epochs_within

    assert epochs_within(900, 130.0, most=40, later_epoch_s=80.0) == 10
    assert epochs_within(900, 130.0, most=40) == 6  # without the later pace: 1 + 770 // 130
    assert epochs_within(900, 130.0, most=8, later_epoch_s=80.0) == 8  # never more than optim.epochs
    assert epochs_within(100, 130.0, most=8, later_epoch_s=80.0) == 1  # the first epoch is trained already
    assert epochs_within(900, 130.0, most=40, later_epoch_s=0.0) == 6  # no later pace measured: the first's


def test_a_budget_overrun_by_slower_epochs_keeps_what_still_fits():
    from vitlab.train.schedule import epochs_still_within

    assert epochs_still_within(900, 400.0, 5, 100.0, 10) == 10  # 400 + 5 x 100 = 900: all fit, exactly
    assert epochs_still_within(900, 420.0, 5, 100.0, 10) == 9  # 420 + 4 x 100 = 820; a fifth would end at 920
    assert epochs_still_within(900, 420.0, 5, 100.0, 7) == 7  # the planned 7 fit
