"""Diagonal-Gaussian posterior math: reparameterization, KL to N(0, I), and the
posterior statistics used to diagnose collapse (He et al. 2019, "Lagging Inference
Networks and Posterior Collapse in Variational Autoencoders": mutual information
and active units). All values are in nats.
"""

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """One sample z ~ N(mean, exp(logvar)) that gradients flow through.

    Args:
        mean, logvar: B x Z
    Returns:
        B x Z
    """
    return mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per latent dimension.

    Args:
        mean, logvar: B x Z
    Returns:
        B x Z, nats
    """
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor):
    """log N(z; mean, exp(logvar)), summed over the last (latent) dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mean).pow(2) / logvar.exp()).sum(-1)


def mutual_information(mean: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor,
                       max_elements: int = 1 << 24):
    """He et al. (2019)'s minibatch estimate of I(x; z) under q(x, z), in nats.

    I = E_x E_{q(z|x)}[log q(z|x) - log q(z)], with the aggregate posterior q(z)
    approximated by the mixture of the B posteriors in the batch. The expectation,
    the batch mean of KL(q(z|x_i) || mixture), lies in [0, log B]: the estimate
    depends on the batch size. He et al.'s code takes E[log q(z|x)] in closed form
    (minus the entropy); here it is taken on the same samples as log q(z), which has
    the same expectation but much less noise: every term is at most log B, and
    identical posteriors give exactly 0. Given a whole split's posteriors (B = N),
    it is Li et al. (2019)'s estimate, whose q(z) is the mixture over the split.

    Args:
        mean, logvar: B x Z posterior parameters
        z: B x Z or B x S x Z, samples from each posterior
        max_elements: the most B x S x B x Z density terms held at once (the rows of
            ``z`` are taken in chunks), so a large B fits in memory
    Returns:
        scalar tensor
    """
    bsz = mean.size(0)
    if z.dim() == 2:
        z = z.unsqueeze(1)  # B x 1 x Z
    rows = max(1, max_elements // max(1, z.size(1) * mean.numel()))
    total = 0.0
    for start in range(0, bsz, rows):
        part = z[start:start + rows]  # C x S x Z
        # log q(z_cs | x_j) for every sample of the chunk and every posterior: C x S x B
        log_density = gaussian_log_density(part.unsqueeze(2), mean[None, None],
                                           logvar[None, None])
        own = log_density[..., start:start + part.size(0)]  # C x S x C
        own = own.diagonal(dim1=0, dim2=2).transpose(0, 1)  # C x S: log q(z_cs | x_c)
        log_qz = torch.logsumexp(log_density, dim=2) - math.log(bsz)  # C x S
        total = total + (own - log_qz).sum()
    return total / (bsz * z.size(1))


# a latent dimension is active when the variance of its posterior mean across the data
# is at least this (Burda et al. 2016; He et al. 2019): the one threshold of the project
AU_THRESHOLD = 0.01


def active_units(mean_sum: torch.Tensor, mean_sq_sum: torch.Tensor, count,
                 threshold: float = AU_THRESHOLD):
    """Number of latent dimensions whose posterior mean varies across the data
    (Burda et al. 2016; He et al. 2019): Var_x(E_q[z_d]) >= threshold.

    Args:
        mean_sum, mean_sq_sum: Z, sums over N sentences of the posterior mean and
            its square (float64: the difference below cancels)
        count: N
    Returns:
        int
    """
    if count < 2:
        return 0
    var = (mean_sq_sum - mean_sum.pow(2) / count) / (count - 1)
    return int((var >= threshold).sum().item())
