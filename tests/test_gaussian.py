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
    """E_x E_q(z|x) [log q(z|x) - log q(z)], q(z) = batch mixture, on the given
    samples z (B x S x Z), one term at a time with torch.distributions."""
    bsz, samples = z.shape[:2]
    std = torch.exp(0.5 * logvar)
    total = 0.0
    for i in range(bsz):
        for s in range(samples):
            densities = [Normal(mean[j], std[j]).log_prob(z[i, s]).sum().item()
                         for j in range(bsz)]
            m = max(densities)
            log_qz = m + math.log(sum(math.exp(d - m) for d in densities)) - math.log(bsz)
            total += densities[i] - log_qz
    return total / (bsz * samples)


def _mi_he_et_al(mean, logvar, z):
    """He et al. (2019)'s code: E[log q(z|x)] in closed form (minus the entropy)."""
    bsz, dim = mean.shape
    neg_entropy = (-0.5 * dim * math.log(2 * math.pi) - 0.5 * (1 + logvar).sum(-1)).mean()
    std = torch.exp(0.5 * logvar)
    log_density = Normal(mean[None, None], std[None, None]).log_prob(z.unsqueeze(2)).sum(-1)
    return (neg_entropy - (torch.logsumexp(log_density, 2) - math.log(bsz)).mean()).item()


def _samples(mean, logvar, n, seed):
    torch.manual_seed(seed)
    eps = torch.randn(mean.size(0), n, mean.size(1), dtype=mean.dtype)
    return mean.unsqueeze(1) + eps * torch.exp(0.5 * logvar).unsqueeze(1)  # B x n x Z


@pytest.mark.parametrize("bsz,dim,samples", [(1, 3, 1), (6, 4, 1), (11, 2, 1), (5, 3, 4)])
def test_mutual_information_matches_loop(bsz, dim, samples):
    mean, logvar = _random_posterior(bsz, dim, seed=bsz)
    z = _samples(mean, logvar, samples, seed=bsz)
    mi = mutual_information(mean, logvar, z)
    assert mi.dim() == 0
    assert mi.item() == pytest.approx(_mi_loop(mean, logvar, z), rel=1e-9, abs=1e-9)
    if samples == 1:  # B x Z samples mean the same as B x 1 x Z
        assert mutual_information(mean, logvar, z.squeeze(1)).item() == mi.item()


@pytest.mark.parametrize("seed", range(3))
def test_mutual_information_has_the_expectation_of_he_et_al(seed):
    """Same estimand as He et al.'s code: with many samples both agree closely."""
    mean, logvar = _random_posterior(16, 3, seed=seed, mean_scale=1.0)
    z = _samples(mean, logvar, 4000, seed=seed)
    ours = mutual_information(mean, logvar, z).item()
    assert ours == pytest.approx(_mi_he_et_al(mean, logvar, z), abs=0.02)
    assert ours > 0.3  # the test would not tell 0 from 0


@pytest.mark.parametrize("max_elements", [1 << 24, 5000])  # one chunk; chunks of 1 row
def test_mutual_information_separated_posteriors_reach_log_batch_size(max_elements):
    bsz, dim = 1024, 3
    mean = torch.zeros(bsz, dim, dtype=torch.float64)
    mean[:, 0] = 50.0 * torch.arange(bsz)
    logvar = torch.full((bsz, dim), -2.0, dtype=torch.float64)
    torch.manual_seed(0)
    mi = mutual_information(mean, logvar, reparameterize(mean, logvar), max_elements).item()
    assert mi == pytest.approx(math.log(bsz), abs=1e-9)


@pytest.mark.parametrize("max_elements", [1, 700, 10_000])
def test_mutual_information_in_chunks_is_the_same(max_elements):
    """A whole split's MI (thousands of posteriors) is taken in chunks of rows."""
    mean, logvar = _random_posterior(37, 4, seed=1, mean_scale=2.0)
    z = _samples(mean, logvar, 3, seed=1)
    whole = mutual_information(mean, logvar, z).item()
    chunked = mutual_information(mean, logvar, z, max_elements).item()
    assert chunked == pytest.approx(whole, rel=1e-12, abs=1e-12)
    assert chunked == pytest.approx(_mi_loop(mean, logvar, z), rel=1e-9)


def test_mutual_information_identical_posteriors_is_zero():
    bsz, dim = 512, 4
    mean = torch.full((bsz, dim), 0.7, dtype=torch.float64)
    logvar = torch.full((bsz, dim), -0.5, dtype=torch.float64)
    torch.manual_seed(0)
    mi = mutual_information(mean, logvar, reparameterize(mean, logvar)).item()
    assert abs(mi) < 1e-9


@pytest.mark.parametrize("seed", range(3))
def test_mutual_information_within_zero_and_log_batch_size(seed):
    bsz = 256
    mean, logvar = _random_posterior(bsz, 4, seed=seed, mean_scale=2.0)
    mi = mutual_information(mean, logvar, _samples(mean, logvar, 8, seed)).item()
    assert mi <= math.log(bsz)  # exactly: every term is at most log B
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
