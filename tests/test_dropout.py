"""The CPU dropout is nn.Dropout's distribution: zero with probability p, the rest scaled."""

import pytest
import torch
from torch import nn

from fairseq_seqvae.modules.dropout import Dropout


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_zeroes_a_fraction_p_and_scales_the_rest(p):
    torch.manual_seed(0)
    x = torch.rand(200, 500) + 0.5  # no zeros of its own
    x.requires_grad_()
    y = Dropout(p).train()(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - p) < 0.005  # 100,000 draws
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / (1 - p))
    # independent masks, like nn.Dropout's
    assert not torch.equal(Dropout(p).train()(x) != 0, kept)


def test_identity_where_nn_dropout_is():
    x = torch.randn(4, 7)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))
    assert isinstance(Dropout(0.3), nn.Dropout)


def test_bf16_stays_bf16():
    x = torch.randn(8, 9, dtype=torch.bfloat16)
    assert Dropout(0.5).train()(x).dtype == torch.bfloat16
