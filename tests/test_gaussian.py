"""Posterior math against reference formulas: torch.distributions for the KL, sample
statistics for reparameterization, a loop over He et al. (2019)'s definition for the
mutual information, numpy's variance for active units."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from fairseq_seqvae.modules.gaussian import (
    active_units,
    gaussian_kl,
    mutual_information,
    reparameterize,
)


def _random_posterior(bsz, dim, seed, mean_scale=1.0):
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(bsz, dim, generator=g, dtype=torch.float64) * mean_scale
    logvar = torch.randn(bsz, dim, generator=g, dtype=torch.float64)
    return mean, logvar


@pytest.mark.parametrize("mean_scale", [0.0, 1.0, 5.0])
def test_gaussian_kl_matches_torch_distributions(mean_scale):
    mean, logvar = _random_posterior(7, 5, seed=1, mean_scale=mean_scale)
    logvar[0] = torch.tensor([-6.0, -1.0, 0.0, 1.0, 4.0], dtype=torch.float64)
    ref = kl_divergence(
        Normal(mean, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mean), 1.0)
    )
    kl = gaussian_kl(mean, logvar)
    assert kl.shape == (7, 5)  # per dimension, not summed
    torch.testing.assert_close(kl, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(kl.sum(-1), ref.sum(-1), rtol=1e-10, atol=1e-12)


def test_gaussian_kl_zero_at_prior():
    kl = gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4))
    assert torch.equal(kl, torch.zeros(3, 4))


def test_reparameterize_statistics():
    torch.manual_seed(0)
    n = 200_000
    mean = torch.tensor([1.0, -2.0, 0.0], dtype=torch.float64).expand(n, 3)
    std = torch.tensor([1.0, 2.0, 0.1], dtype=torch.float64)
    logvar = (2 * std.log()).expand(n, 3)
    z = reparameterize(mean, logvar)
    assert z.shape == (n, 3)
    # standard error of the mean is std / sqrt(n) ~ 0.002 std: 0.02 std is ~9 sigma
    torch.testing.assert_close(z.mean(0), mean[0], rtol=0, atol=0.02 * 2.0)
    torch.testing.assert_close(z.var(0), std.pow(2), rtol=0.02, atol=0)
    # one independent draw per row
    corr = np.corrcoef(z[:, 0].numpy(), z[:, 1].numpy())[0, 1]
    assert abs(corr) < 0.02


def test_reparameterize_is_random_and_seeded():
    mean, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    torch.manual_seed(3)
    a = reparameterize(mean, logvar)
    torch.manual_seed(3)
    b = reparameterize(mean, logvar)
    c = reparameterize(mean, logvar)
    assert torch.equal(a, b)
    assert not torch.equal(b, c)


def test_reparameterize_gradients_flow():
    torch.manual_seed(0)
    mean = torch.randn(5, 3, requires_grad=True)
    logvar = torch.randn(5, 3, requires_grad=True)
    z = reparameterize(mean, logvar)
    z.sum().backward()
    # dz/dmean = 1; dz/dlogvar = 0.5 * eps * std = 0.5 * (z - mean)
    torch.testing.assert_close(mean.grad, torch.ones(5, 3))
    torch.testing.assert_close(logvar.grad, 0.5 * (z - mean).detach())


def _mi_loop(mean, logvar, z):
    """He et al. (2019): E_x E_q(z|x) log q(z|x) - E_q(z) log q(z), q(z) = batch mixture;
    the first term analytic (minus the entropy), the second on the given samples."""
    bsz = mean.size(0)
    std = torch.exp(0.5 * logvar)
    neg_entropy = 0.0
    log_qz = 0.0
    for i in range(bsz):
        neg_entropy -= Normal(mean[i], std[i]).entropy().sum().item()
        densities = [Normal(mean[j], std[j]).log_prob(z[i]).sum().item() for j in range(bsz)]
        m = max(densities)
        log_qz += m + math.log(sum(math.exp(d - m) for d in densities)) - math.log(bsz)
    return neg_entropy / bsz - log_qz / bsz


@pytest.mark.parametrize("bsz,dim", [(1, 3), (6, 4), (11, 2)])
def test_mutual_information_matches_loop(bsz, dim):
    mean, logvar = _random_posterior(bsz, dim, seed=bsz)
    torch.manual_seed(bsz)
    z = reparameterize(mean, logvar)
    mi = mutual_information(mean, logvar, z)
    assert mi.dim() == 0
    assert mi.item() == pytest.approx(_mi_loop(mean, logvar, z), rel=1e-9, abs=1e-9)


def test_mutual_information_separated_posteriors_reach_log_batch_size():
    bsz, dim = 1024, 3
    mean = torch.zeros(bsz, dim, dtype=torch.float64)
    mean[:, 0] = 50.0 * torch.arange(bsz)
    logvar = torch.full((bsz, dim), -2.0, dtype=torch.float64)
    torch.manual_seed(0)
    mi = mutual_information(mean, logvar, reparameterize(mean, logvar)).item()
    # q(z) is log B above each q(z_i|x_i); the rest is single-sample noise, sd ~ 0.04
    assert mi == pytest.approx(math.log(bsz), abs=0.15)


def test_mutual_information_identical_posteriors_is_zero():
    bsz, dim = 4096, 4
    mean = torch.full((bsz, dim), 0.7, dtype=torch.float64)
    logvar = torch.full((bsz, dim), -0.5, dtype=torch.float64)
    torch.manual_seed(0)
    mi = mutual_information(mean, logvar, reparameterize(mean, logvar)).item()
    # single-sample estimate of E[log q] - E[log q]: sd ~ sqrt(dim / 2 / bsz) ~ 0.02
    assert abs(mi) < 0.1


@pytest.mark.parametrize("seed", range(3))
def test_mutual_information_roughly_within_zero_and_log_batch_size(seed):
    bsz = 256
    mean, logvar = _random_posterior(bsz, 4, seed=seed, mean_scale=2.0)
    torch.manual_seed(seed)
    mi = mutual_information(mean, logvar, reparameterize(mean, logvar)).item()
    assert -0.1 < mi < math.log(bsz) + 0.1
    assert mi > 0.5  # these posteriors are far from identical


def test_active_units_matches_numpy_variance():
    rng = np.random.default_rng(0)
    n = 50
    means = rng.normal(size=(n, 8)) * np.array([1.0, 0.0, 0.05, 0.2, 0.0, 3.0, 0.09, 0.11])
    means[:, 1] = 0.3  # constant dimensions: variance exactly 0 in exact arithmetic
    means[:, 4] = -2.0
    # +-a alternating: variance 0.0101 with ddof=1 (active) but 0.0099 with ddof=0
    means[:, 6] = 0.5 + np.sqrt(0.0099) * (-1.0) ** np.arange(n)
    ref_var = means.var(axis=0, ddof=1)
    assert ref_var[6] >= 0.01 > means[:, 6].var(ddof=0)
    t = torch.from_numpy(means)
    for threshold in [0.01, 0.005, 0.5]:
        expected = int((ref_var >= threshold).sum())
        au = active_units(t.sum(0), t.pow(2).sum(0), n, threshold)
        assert isinstance(au, int)
        assert au == expected
    # the default threshold is He et al.'s 0.01
    assert active_units(t.sum(0), t.pow(2).sum(0), n) == int((ref_var >= 0.01).sum())


def test_active_units_from_summed_chunks():
    """The criterion sums per-batch statistics; the count must not depend on the split."""
    rng = np.random.default_rng(1)
    means = torch.from_numpy(rng.normal(size=(40, 6)) * np.array([1, 0, 0.2, 0.01, 2, 0.05]))
    whole = active_units(means.sum(0), means.pow(2).sum(0), 40)
    parts = [means[:7], means[7:30], means[30:]]
    split = active_units(
        sum(p.sum(0) for p in parts), sum(p.pow(2).sum(0) for p in parts), 40
    )
    ref = int((means.numpy().var(axis=0, ddof=1) >= 0.01).sum())
    assert whole == split == ref


def test_active_units_needs_two_sentences():
    m = torch.tensor([[5.0, -5.0]], dtype=torch.float64)
    assert active_units(m.sum(0), m.pow(2).sum(0), 1) == 0
