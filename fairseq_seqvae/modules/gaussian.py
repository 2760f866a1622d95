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


def mutual_information(mean: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor):
    """He et al. (2019)'s minibatch estimate of I(x; z) under q(x, z), in nats.

    I = E_x E_{q(z|x)}[log q(z|x)] - E_{q(z)}[log q(z)], with the aggregate
    posterior q(z) approximated by the mixture of the B posteriors in the batch.
    The estimate is therefore at most log(B) and depends on the batch size.

    Args:
        mean, logvar: B x Z posterior parameters
        z: B x Z, one sample from each posterior
    Returns:
        scalar tensor
    """
    bsz, dim = mean.shape
    neg_entropy = (-0.5 * dim * LOG_2PI - 0.5 * (1 + logvar).sum(-1)).mean()
    # log q(z_i | x_j) for every pair: B (samples) x B (posteriors)
    log_density = gaussian_log_density(z.unsqueeze(1), mean.unsqueeze(0), logvar.unsqueeze(0))
    log_qz = torch.logsumexp(log_density, dim=1) - math.log(bsz)
    return neg_entropy - log_qz.mean()


def active_units(mean_sum: torch.Tensor, mean_sq_sum: torch.Tensor, count, threshold=0.01):
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
