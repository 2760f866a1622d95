"""Aggressive inference-network training (He et al. 2019, ``--aggressive``): the
inner loop's stopping rule, the switch-off rule, and what one update does to the
parameters when fairseq's real Trainer drives the task in this process."""

import math
import os
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cli_utils, package or not
import cli_utils as cu  # noqa: E402

from fairseq import metrics, tasks, utils  # noqa: E402
from fairseq.logging import meters  # noqa: E402
from fairseq.trainer import Trainer  # noqa: E402

from fairseq_seqvae.aggressive import (  # noqa: E402
    NOT_STARTED, OFF, ON, next_phase, run_inner_loop,
)

# the stopping points of He et al.'s loop with their settings: after 2, 3, ... windows
# of 15 inner steps (the first window is compared with +inf), or at 100 steps
HE_STOPS = {30, 45, 60, 75, 90, 100}


def scripted(losses, tokens=None):
    """An encoder_step that returns the given per-step (loss, tokens), and counts calls."""
    tokens = tokens or [1.0] * len(losses)
    calls = iter(zip(losses, tokens))
    return lambda: next(calls)


@pytest.mark.parametrize("windows, expected", [
    ([5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.4], 100),  # always improving: the cap
    ([5.0, 4.0, 4.5], 45),  # the third window is worse than the second
    ([1e9, 1e9 + 1.0], 30),  # the first window is only ever compared with +inf
    ([3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0], 100),  # equal is not worse (He et al.: strict)
])
def test_inner_loop_stops_when_a_window_gets_worse(windows, expected):
    losses = [w for w in windows for _ in range(15)] + [0.0] * 15
    assert run_inner_loop(scripted(losses), check_every=15, max_steps=100) == expected


def test_inner_loop_compares_loss_per_token_not_sums():
    """Window 2 has a larger summed loss but more tokens: per token it improved."""
    losses = [2.0] * 3 + [3.0] * 3 + [1.0] * 3
    tokens = [1.0] * 3 + [2.0] * 3 + [1.0] * 3
    assert run_inner_loop(scripted(losses, tokens), check_every=3, max_steps=9) == 9
    assert run_inner_loop(scripted(losses, [1.0] * 9), check_every=3, max_steps=9) == 6


def test_inner_loop_cap_need_not_be_a_multiple_of_the_window():
    assert run_inner_loop(scripted([1.0] * 7), check_every=3, max_steps=7) == 7
    assert run_inner_loop(scripted([1.0] * 1), check_every=15, max_steps=1) == 1


def test_switch_off_rule():
    assert next_phase(ON, valid_mi=0.5, previous_mi=0.0) == ON
    assert next_phase(ON, valid_mi=0.5, previous_mi=0.5) == ON
    assert next_phase(ON, valid_mi=0.4, previous_mi=0.5) == OFF
    assert next_phase(ON, valid_mi=-0.01, previous_mi=0.0) == OFF  # He et al. start at 0
    assert next_phase(OFF, valid_mi=9.0, previous_mi=0.0) == OFF  # off for good
    assert next_phase(NOT_STARTED, valid_mi=-1.0, previous_mi=0.0) == NOT_STARTED


# --- fairseq's Trainer in this process ------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return cu.binarized_synthetic(tmp_path_factory.mktemp("aggressive_corpus"), 200, 40)


def make_trainer(data, tmp_path, *extra):
    cfg = cu.train_config(data, tmp_path / "ck", *extra)
    np.random.seed(cfg.common.seed)  # as fairseq_cli/train.py does
    utils.set_torch_seed(cfg.common.seed)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    return Trainer(cfg, task, model, criterion), task


def first_batch(task):
    dataset = task.dataset("train")
    return dataset.collater([dataset[i] for i in range(16)])


def adam_steps(trainer):
    """{parameter name: number of Adam steps it has taken}."""
    state = trainer.optimizer.optimizer.state
    return {name: state[p]["step"] if p in state else 0
            for name, p in trainer.get_model().named_parameters()}


def train_step(trainer, sample):
    """One real fairseq update; returns the metrics it logged (not the timings)."""
    with metrics.aggregate(new_root=True) as agg:
        trainer.train_step([sample])
    return {key: float(agg[key].val) for key in agg
            if isinstance(agg[key], meters.AverageMeter)}


def test_update_trains_encoder_in_the_inner_loop_then_decoder_only(data, tmp_path):
    """fairseq's own Adam (per-parameter step counts): during an aggressive update
    every encoder parameter takes exactly ``inner_steps`` steps and every decoder
    parameter exactly one; once aggressive mode is off, everything takes one step."""
    trainer, task = make_trainer(data, tmp_path, "--aggressive", "--pooling", "last")
    sample = first_batch(task)
    model = trainer.get_model()
    encoder = {n for n, _ in model.named_parameters() if n.startswith("encoder.")}
    assert encoder and len(encoder) < len(dict(model.named_parameters()))

    logged = train_step(trainer, sample)
    inner = logged["inner_steps"]
    assert inner in HE_STOPS
    steps = adam_steps(trainer)
    for name, count in steps.items():
        assert count == (inner if name in encoder else 1), f"{name}: {count} Adam steps"
    assert model.aggressive_state[0] == ON

    model.aggressive_state[0] = OFF
    logged = train_step(trainer, sample)
    assert logged["inner_steps"] == 0
    for name, count in adam_steps(trainer).items():
        assert count == steps[name] + 1, f"{name}: not updated once after switch-off"


def test_no_inner_loop_and_no_metric_without_the_flag(data, tmp_path):
    trainer, task = make_trainer(data, tmp_path)
    logged = train_step(trainer, first_batch(task))
    assert "inner_steps" not in logged
    assert set(adam_steps(trainer).values()) == {1}
    assert trainer.get_model().aggressive_state[0] == NOT_STARTED


def test_inner_loop_batches_are_fresh_and_reproducible(data, tmp_path):
    """The inner loop draws training batches as fairseq cuts them, chosen by the seed,
    the update number and the rank: the same update repeats exactly in a new trainer
    (as after a resume), and the next update draws other batches."""
    runs = []
    for name in ("a", "b"):
        trainer, task = make_trainer(data, tmp_path / name, "--aggressive")
        sample = first_batch(task)
        runs.append([train_step(trainer, sample) for _ in range(2)])
        batches = task.aggressive_training.inner_loop_batches(task.dataset("train"))
        assert sum(len(b) for b in batches) == len(task.dataset("train"))
    assert runs[0] == runs[1]
    assert runs[0][0]["inner_steps"] in HE_STOPS and runs[0][1]["inner_steps"] in HE_STOPS


def validation(task, model, mi, subsets=1):
    """What fairseq's validate() does around the task for a validation whose
    subsets report these MIs; returns the logged stats of the first subset."""
    task.begin_valid_epoch(1, model)
    first = None
    for _ in range(subsets):
        with metrics.aggregate(new_root=True) as agg:
            if mi is not None:
                metrics.log_scalar("mi", mi)
        stats = {}
        task.post_validate(model, stats, agg)
        first = stats if first is None else first
    return first


def test_switch_off_after_validation(data, tmp_path):
    trainer, task = make_trainer(data, tmp_path, "--aggressive")
    model = trainer.get_model()
    train_step(trainer, first_batch(task))  # starts aggressive mode
    assert validation(task, model, 0.2) == {"aggressive": 1}
    assert validation(task, model, 0.5, subsets=2) == {"aggressive": 1}  # only 1st counts
    assert float(model.aggressive_state[1]) == pytest.approx(0.5)
    assert validation(task, model, 0.4) == {"aggressive": 0}
    assert model.aggressive_state[0] == OFF
    assert validation(task, model, 0.9) == {"aggressive": 0}
    assert model.aggressive_state[0] == OFF


def test_mid_epoch_validation_does_not_decide(data, tmp_path):
    """He et al. check the MI once per epoch: a validation while the training epoch
    has batches left (fairseq's --validate-interval-updates, --save-interval-updates)
    keeps aggressive mode and the previous MI as they are; the one at its end decides."""
    trainer, task = make_trainer(data, tmp_path, "--aggressive")
    model = trainer.get_model()
    train_step(trainer, first_batch(task))
    epoch_itr = trainer.get_train_iterator(epoch=1)
    assert task.aggressive_training.train_iterator is epoch_itr
    itr = epoch_itr.next_epoch_itr(shuffle=False)
    assert len(itr) > 1, "setup: the epoch needs several batches"
    next(itr)
    assert validation(task, model, -1.0) == {"aggressive": 1}
    assert model.aggressive_state[0] == ON and float(model.aggressive_state[1]) == 0.0
    for _ in itr:
        pass
    assert validation(task, model, -1.0) == {"aggressive": 0}
    assert model.aggressive_state[0] == OFF


def test_switch_off_needs_the_valid_mi(data, tmp_path):
    trainer, task = make_trainer(data, tmp_path, "--aggressive")
    model = trainer.get_model()
    train_step(trainer, first_batch(task))
    with pytest.raises(ValueError, match="--aggressive needs the validation MI"):
        validation(task, model, None)


MISSING = "/nonexistent/checkpoint.pt"


@pytest.mark.parametrize("extra, error, message", [
    (["--aggressive", "--latent-dim", 0], ValueError,
     "--aggressive trains an encoder: it needs --latent-dim > 0"),
    (["--aggressive", "--update-freq", 2], ValueError,
     "--aggressive does not support --update-freq > 1"),
    (["--aggressive", "--aggressive-check-steps", 0], ValueError,
     "--aggressive-check-steps must be >= 1, got 0"),
    (["--aggressive", "--aggressive-max-steps", 0], ValueError,
     "--aggressive-max-steps must be >= 1, got 0"),
    (["--aggressive", "--amp"], ValueError, "not --fp16, --memory-efficient-fp16 or --amp"),
    (["--bn-gamma", -0.5], ValueError, "--bn-gamma must be >= 0 (0 turns BN-VAE off), got -0.5"),
    (["--bn-gamma", 0.5, "--latent-dim", 0], ValueError,
     "--bn-gamma needs a latent variable (--latent-dim > 0)"),
    (["--init-encoder-from", MISSING], FileNotFoundError,
     f"--init-encoder-from: no checkpoint at {MISSING}"),
])
def test_bad_options_name_the_flag(data, tmp_path, extra, error, message):
    cfg = cu.train_config(data, tmp_path / "ck", *extra)
    with pytest.raises(error, match=re.escape(message)):
        task = tasks.setup_task(cfg.task)
        task.build_model(cfg.model)


def test_inner_steps_values_are_he_et_al_stops():
    """HE_STOPS above is what the rule gives for windows of 15 and a cap of 100."""
    stops = set()
    for worse_window in range(2, 8):
        windows = [10.0 - w for w in range(worse_window - 1)] + [math.inf]
        losses = [w for w in windows for _ in range(15)] + [0.0] * 120
        stops.add(run_inner_loop(scripted(losses), check_every=15, max_steps=100))
    assert stops == HE_STOPS
