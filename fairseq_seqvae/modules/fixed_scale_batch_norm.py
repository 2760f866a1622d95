"""Batch normalization with a fixed scale, applied to the posterior mean: BN-VAE.

Zhu et al. (2020), "A Batch Normalized Inference Network Keeps the KL Vanishing
Away": normalizing each dimension of the posterior mean over the batch and scaling
it by a fixed ``gamma`` (the shift stays learnable) keeps the expected KL away from 0.

The bound, for one training batch of B >= 2 sentences. BN gives, per latent
dimension d, mu_id = gamma * (x_id - m_d) / sqrt(v_d + eps) + beta_d, where m_d and
v_d are the batch mean and the biased batch variance of the encoder's raw means x.
Averaging over the batch:

    (1/B) sum_i mu_id^2 = gamma^2 * v_d / (v_d + eps) + beta_d^2

and since KL_i = 1/2 sum_d (mu_id^2 + s_id - 1 - log s_id) with s = sigma^2, and
s - 1 - log s >= 0, the batch-mean KL obeys

    (1/B) sum_i KL_i >= gamma^2 / 2 * sum_d v_d / (v_d + eps) + 1/2 sum_d beta_d^2
                     >= gamma^2 / 2 * sum_d v_d / (v_d + eps)

which is Z * gamma^2 / 2 (Zhu et al.'s bound) up to the factor v_d / (v_d + eps),
i.e. whenever the raw means vary across the batch by much more than eps. It holds
in training mode (batch statistics), not at evaluation, where BN uses running
statistics.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class FixedScaleBatchNorm(nn.Module):
    """BatchNorm1d over the batch whose scale is the constant ``gamma`` (not learned)
    and whose shift is a learnable parameter, as in Zhu et al. (2020).

    A training batch of a single sentence has no batch variance: it is normalized
    with the running statistics instead (and does not update them).
    """

    def __init__(self, num_features: int, gamma: float, eps: float = 1e-5,
                 momentum: float = 0.1):
        super().__init__()
        self.gamma = gamma
        self.eps = eps
        self.momentum = momentum
        self.shift = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        """
        Args:
            x: B x Z (computed in fp32, also under autocast)
        Returns:
            B x Z: gamma * (x - batch mean) / sqrt(batch variance + eps) + shift
        """
        use_batch = self.training and x.size(0) > 1
        normalized = F.batch_norm(
            x.float(), self.running_mean, self.running_var, training=use_batch,
            momentum=self.momentum, eps=self.eps,
        )
        return self.gamma * normalized + self.shift

    def extra_repr(self) -> str:
        return f"{self.shift.numel()}, gamma={self.gamma}, eps={self.eps}"


def batch_kl_lower_bound(gamma: float, batch_var: Tensor, eps: float = 1e-5) -> Tensor:
    """The BN-VAE lower bound on the batch-mean KL (see the module docstring).

    Args:
        gamma: the fixed BN scale
        batch_var: Z, biased batch variance of the raw (pre-BN) posterior means
        eps: the BN epsilon
    Returns:
        scalar: gamma^2 / 2 * sum_d v_d / (v_d + eps), nats per sentence; at most
        Z * gamma^2 / 2
    """
    return 0.5 * gamma ** 2 * (batch_var / (batch_var + eps)).sum()
