"""KL schedules are pure functions of the update count with the documented endpoints,
and the criterion reads beta from the model's update count."""

import random

import pytest
import torch

from fairseq_seqvae.modules.kl_schedules import KL_SCHEDULES, KLScheduleParams

ALL_SCHEDULES = sorted(KL_SCHEDULES)
PARAMS = KLScheduleParams(
    start=0.1, max=0.9, warmup_updates=100, cycle_updates=40, cycle_ratio=0.25, num_cycles=3
)
STEPS = [0, 1, 5, 9, 10, 11, 20, 39, 40, 41, 50, 99, 100, 101, 119, 120, 121, 1000, 5000]


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_schedule_is_pure(name):
    schedule = KL_SCHEDULES[name]
    fresh = {n: schedule(n, PARAMS) for n in STEPS}
    for n in STEPS:
        assert isinstance(fresh[n], float), "beta must be a plain number"
    # late first, then early: no hidden state carried between calls (a resumed run)
    assert schedule(5000, PARAMS) == fresh[5000]
    assert schedule(10, PARAMS) == fresh[10]
    shuffled = STEPS * 2
    random.Random(0).shuffle(shuffled)
    for n in shuffled:
        assert schedule(n, PARAMS) == fresh[n]
    assert PARAMS == KLScheduleParams(
        start=0.1, max=0.9, warmup_updates=100, cycle_updates=40, cycle_ratio=0.25,
        num_cycles=3,
    )


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_schedule_stays_within_start_and_max(name):
    schedule = KL_SCHEDULES[name]
    for n in range(0, 300):
        assert PARAMS.start - 1e-12 <= schedule(n, PARAMS) <= PARAMS.max + 1e-12


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_schedule_ends_at_max(name):
    """Every schedule has reached --kl-max long after warm-up and the last cycle."""
    assert KL_SCHEDULES[name](10**6, PARAMS) == pytest.approx(PARAMS.max)


def test_constant_is_max():
    p = KLScheduleParams(start=0.0, max=0.37, warmup_updates=10)
    assert all(KL_SCHEDULES["constant"](n, p) == 0.37 for n in [0, 1, 10, 10**6])


def test_linear_endpoints_and_monotonic():
    linear = KL_SCHEDULES["linear"]
    p = KLScheduleParams(start=0.0, max=1.0, warmup_updates=1000)
    assert linear(0, p) == 0.0
    assert linear(500, p) == pytest.approx(0.5)
    assert linear(250, p) == pytest.approx(0.25)
    assert linear(1000, p) == pytest.approx(1.0)
    assert linear(1001, p) == pytest.approx(1.0)
    assert linear(10**6, p) == pytest.approx(1.0)
    values = [linear(n, p) for n in range(0, 1200)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[999] < 1.0


def test_linear_with_nonzero_start():
    linear = KL_SCHEDULES["linear"]
    p = KLScheduleParams(start=0.2, max=0.6, warmup_updates=10)
    assert linear(0, p) == pytest.approx(0.2)
    assert linear(5, p) == pytest.approx(0.4)
    assert linear(10, p) == pytest.approx(0.6)


def test_linear_hold_keeps_start_then_warms_up():
    """--kl-hold-updates: beta = start for that many updates, then the same ramp,
    shifted."""
    linear = KL_SCHEDULES["linear"]
    held = KLScheduleParams(start=0.1, max=1.0, warmup_updates=100, hold_updates=50)
    plain = KLScheduleParams(start=0.1, max=1.0, warmup_updates=100)
    assert [linear(n, held) for n in (0, 25, 49, 50)] == [pytest.approx(0.1)] * 4
    for n in (50, 75, 100, 149, 150, 10**6):
        assert linear(n, held) == pytest.approx(linear(n - 50, plain))
    assert linear(150, held) == pytest.approx(1.0)
    assert KL_SCHEDULES["linear"](10, KLScheduleParams(start=0.2, max=0.8, hold_updates=20)) \
        == pytest.approx(0.2)


def test_linear_without_warmup_is_max():
    p = KLScheduleParams(start=0.0, max=0.8, warmup_updates=0)
    assert KL_SCHEDULES["linear"](0, p) == pytest.approx(0.8)


def test_cyclical_shape():
    cyclical = KL_SCHEDULES["cyclical"]
    p = KLScheduleParams(start=0.0, max=1.0, cycle_updates=100, cycle_ratio=0.5, num_cycles=3)
    for c in range(3):
        base = 100 * c
        assert cyclical(base, p) == pytest.approx(0.0), f"cycle {c} starts at start"
        assert cyclical(base + 25, p) == pytest.approx(0.5)
        assert cyclical(base + 50, p) == pytest.approx(1.0), "max at ratio * cycle"
        for n in range(base + 50, base + 100):
            assert cyclical(n, p) == pytest.approx(1.0), "max through the end of the cycle"
        ramp = [cyclical(n, p) for n in range(base, base + 51)]
        assert all(b > a for a, b in zip(ramp, ramp[1:]))
    for n in [300, 301, 325, 350, 399, 400, 10**5]:
        assert cyclical(n, p) == pytest.approx(1.0), "stays at max after num_cycles"


def test_cyclical_forever_and_nonzero_start():
    cyclical = KL_SCHEDULES["cyclical"]
    p = KLScheduleParams(start=0.2, max=0.8, cycle_updates=10, cycle_ratio=0.3, num_cycles=0)
    for c in [0, 1, 7, 1000]:
        assert cyclical(10 * c, p) == pytest.approx(0.2)
        assert cyclical(10 * c + 3, p) == pytest.approx(0.8)
        assert cyclical(10 * c + 9, p) == pytest.approx(0.8)


def test_cyclical_zero_ratio_is_max():
    p = KLScheduleParams(start=0.0, max=0.5, cycle_updates=10, cycle_ratio=0.0)
    assert [KL_SCHEDULES["cyclical"](n, p) for n in [0, 3, 10]] == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_criterion_beta_follows_model_num_updates(
    name, make_model, make_criterion, make_sentences, make_batch
):
    kw = dict(kl_start=0.1, kl_max=0.9, kl_warmup_updates=100, kl_cycle_updates=40,
              kl_cycle_ratio=0.25, kl_num_cycles=3)
    criterion = make_criterion(kl_schedule=name, **kw)
    sentences = make_sentences([3, 5, 2])
    sample = make_batch(sentences)
    model = make_model()
    model.eval()
    for n in [50, 0, 20, 5000, 10]:
        model.set_num_updates(n)
        assert model.num_updates == n
        assert criterion.kl_weight(n) == KL_SCHEDULES[name](n, PARAMS)
        torch.manual_seed(0)
        loss, _, log = criterion(model, sample)
        beta = KL_SCHEDULES[name](n, PARAMS)
        assert log["kl_weight"] / log["nsentences"] == pytest.approx(beta)
        assert loss.item() == pytest.approx((log["rec"] + beta * log["kl"]).item(), rel=1e-6)
    # a resumed model (fresh object, count restored) gets the same beta
    resumed = make_model()
    resumed.set_num_updates(20)
    torch.manual_seed(0)
    _, _, log = criterion(resumed, sample)
    assert log["kl_weight"] / 3 == pytest.approx(KL_SCHEDULES[name](20, PARAMS))
