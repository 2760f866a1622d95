"""The task's train step keeps what fairseq's own does: with ``--amp`` (an
``AMPOptimizer``) the forward pass runs under float16 autocast; with
``--bf16-autocast`` under bfloat16; otherwise in full precision."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cli_utils, package or not

from fairseq.optim.amp_optimizer import AMPOptimizer  # noqa: E402

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
