"""The task's train step keeps what fairseq's own does: with ``--amp`` (an
``AMPOptimizer``) the forward pass runs under float16 autocast; with
``--bf16-autocast`` under bfloat16; otherwise in full precision. Every
``--malloc-trim-seconds`` it gives the free heap memory back."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cli_utils, package or not

from fairseq.optim.amp_optimizer import AMPOptimizer  # noqa: E402

from fairseq_seqvae import heap  # noqa: E402
from fairseq_seqvae.tasks import seqvae_language_modeling  # noqa: E402
from fairseq_seqvae.tasks.seqvae_language_modeling import (  # noqa: E402
    SeqVAELanguageModelingConfig,
    SeqVAELanguageModelingTask,
)


class RecordingCriterion:
    """Records the autocast state of the forward pass it is called in."""

    def __call__(self, model, sample):
        device = next(model.parameters()).device.type
        self.autocast = (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        loss = model.weight.sum()
        return loss, 1, {"ntokens": 1}


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))

    def set_num_updates(self, num_updates):
        pass


class AMP(AMPOptimizer):
    """An AMPOptimizer as fairseq's --amp builds one, without a real optimizer inside."""

    def __init__(self):  # noqa: D107  (fairseq's needs a config and CUDA)
        pass

    def backward(self, loss):
        loss.backward()


class Plain:
    def backward(self, loss):
        loss.backward()


@pytest.mark.parametrize("optimizer, bf16, expected", [
    (AMP(), False, (True, torch.float16)),
    (Plain(), True, (True, torch.bfloat16)),
    (Plain(), False, (False, None)),
])
def test_forward_pass_precision(dictionary, optimizer, bf16, expected):
    task = SeqVAELanguageModelingTask(SeqVAELanguageModelingConfig(bf16_autocast=bf16),
                                      dictionary)
    criterion = RecordingCriterion()
    task.train_step({}, Model(), criterion, optimizer, update_num=0)
    enabled, dtype = criterion.autocast
    assert enabled == expected[0]
    if enabled:
        assert dtype == expected[1]


class Clock:
    """A stand-in for the task module's ``time``: each train step takes 4 s."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now


@pytest.mark.parametrize("seconds, trimmed_after", [(10, [3, 6, 9]), (1, list(range(1, 10))),
                                                    (0, [])])
def test_heap_is_trimmed_every_few_seconds(dictionary, monkeypatch, seconds, trimmed_after):
    clock, calls = Clock(), []
    monkeypatch.setattr(seqvae_language_modeling, "time", clock)
    monkeypatch.setattr(heap, "trim", lambda: calls.append(clock.now // 4))
    task = SeqVAELanguageModelingTask(
        SeqVAELanguageModelingConfig(malloc_trim_seconds=seconds), dictionary)
    for update_num in range(9):
        clock.now += 4
        task.train_step({}, Model(), RecordingCriterion(), Plain(), update_num=update_num)
    assert calls == trimmed_after


def test_negative_trim_seconds_are_refused():
    with pytest.raises(ValueError, match="--malloc-trim-seconds must be 0"):
        SeqVAELanguageModelingTask.setup_task(
            SeqVAELanguageModelingConfig(data="unused", malloc_trim_seconds=-1))
