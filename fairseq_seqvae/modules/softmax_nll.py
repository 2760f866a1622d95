"""Summed softmax cross-entropy with a leaner backward pass for large vocabularies.

Same value and gradient as ``F.cross_entropy(logits.float(), target, reduction="sum")``,
without PyTorch's N x V zero fill and separate log-softmax backward: the backward turns
the softmax into the gradient in place (softmax - one-hot). The softmax over the
vocabulary is about a fifth of a training step at the PTB size on CPU.

fp32 logits: the log-probabilities are saved and exponentiated in place. bf16 logits
(``--bf16-autocast``) stay bf16: PyTorch's bf16 (log-)softmax kernels compute in fp32 and
round only their outputs, and on CPU they run about 3x faster than an fp32 copy of the
N x V logits followed by the fp32 kernel. So each token's log-probability is rounded to
bf16 before the fp32 sum (the loss is within about 1e-4 relative of the fp32 one), and the
gradient, which the bf16 output projection takes in bf16 anyway, is the bf16 softmax.
"""

import torch
from torch import Tensor


class _SoftmaxNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor) -> Tensor:
        full = logits.dtype in (torch.float32, torch.float64)
        logp = torch.log_softmax(logits, dim=-1)  # N x V, the logits' dtype
        ctx.save_for_backward(logp if full else logits, target)
        ctx.full = full
        return -logp.gather(1, target.unsqueeze(1)).float().sum()

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        saved, target = ctx.saved_tensors
        # softmax; fp32 log-probabilities are not needed again (no double backward)
        grad = saved.exp_() if ctx.full else torch.softmax(saved, dim=-1)
        rows = torch.arange(grad.size(0), device=grad.device)
        grad[rows, target] -= 1.0
        if grad_output.item() != 1.0:
            grad.mul_(grad_output.to(grad.dtype))
        return grad, None


def softmax_nll(logits: Tensor, target: Tensor) -> Tensor:
    """Sum over rows of -log softmax(logits)[target], summed in fp32.

    Args:
        logits: N x V (fp32, or bf16 under autocast)
        target: N
    Returns:
        scalar fp32 tensor
    """
    return _SoftmaxNLL.apply(logits, target)
