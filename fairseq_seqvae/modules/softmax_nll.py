"""Summed softmax cross-entropy with a leaner backward pass for large vocabularies.

Same value and gradient as ``F.cross_entropy(logits.float(), target, reduction="sum")``,
but the backward turns the saved log-probabilities into the gradient in place
(softmax - one-hot), without PyTorch's N x V zero fill and separate log-softmax
backward, and bf16 logits (``--bf16-autocast``) go to the fp32 log-softmax without
a full-size fp32 copy first. The softmax over the vocabulary is about a fifth of a
training step at the PTB size on CPU.
"""

import torch
from torch import Tensor


class _SoftmaxNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor) -> Tensor:
        logp = torch.log_softmax(logits, dim=-1, dtype=torch.float32)  # N x V
        ctx.save_for_backward(logp, target)
        ctx.logits_dtype = logits.dtype
        return -logp.gather(1, target.unsqueeze(1)).sum()

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        logp, target = ctx.saved_tensors
        grad = logp.exp_()  # softmax; logp is not needed again (no double backward)
        grad.scatter_add_(1, target.unsqueeze(1), grad.new_full((grad.size(0), 1), -1.0))
        if grad_output.item() != 1.0:
            grad.mul_(grad_output)
        return grad.to(ctx.logits_dtype), None


def softmax_nll(logits: Tensor, target: Tensor) -> Tensor:
    """Sum over rows of -log softmax(logits)[target], in fp32.

    Args:
        logits: N x V (any float dtype)
        target: N
    Returns:
        scalar fp32 tensor
    """
    return _SoftmaxNLL.apply(logits, target)
