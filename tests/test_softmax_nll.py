"""softmax_nll has the value and gradient of F.cross_entropy(reduction="sum")."""

import pytest
import torch
import torch.nn.functional as F

from fairseq_seqvae.modules.softmax_nll import softmax_nll


def _inputs(dtype, n=37, v=101, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(n, v, generator=g)).to(dtype).requires_grad_()
    target = torch.randint(0, v, (n,), generator=g)
    return logits, target


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_matches_cross_entropy_fp32(scale):
    logits, target = _inputs(torch.float32)
    ours = softmax_nll(logits, target)
    (ours * scale).backward()
    ours_grad = logits.grad.clone()
    logits.grad = None
    ref = F.cross_entropy(logits, target, reduction="sum")
    (ref * scale).backward()
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(ours_grad, logits.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_bf16_logits_give_fp32_loss_and_bf16_grad(scale):
    logits, target = _inputs(torch.bfloat16, n=300, v=1001)
    ours = softmax_nll(logits, target)
    (ours * scale).backward()
    ref_logits = logits.detach().float().requires_grad_()
    ref = F.cross_entropy(ref_logits, target, reduction="sum")
    (ref * scale).backward()
    assert ours.dtype == torch.float32 and logits.grad.dtype == torch.bfloat16
    # each token's log-probability is rounded to bf16 (8 bits), then summed in fp32
    assert ours.item() != ref.item()
    torch.testing.assert_close(ours, ref, rtol=2e-4, atol=0)
    torch.testing.assert_close(logits.grad.float(), ref_logits.grad, rtol=1e-2, atol=4e-3)


def test_no_grad_forward():
    logits, target = _inputs(torch.float32)
    with torch.no_grad():
        value = softmax_nll(logits, target)
    assert torch.isclose(value, F.cross_entropy(logits, target, reduction="sum").detach())
