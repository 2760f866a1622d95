"""BN-VAE (Zhu et al. 2020, ``--bn-gamma``): the batch-normalized posterior mean keeps
the batch-mean KL above gamma^2 / 2 * sum_d v_d / (v_d + eps), which is
latent_dim * gamma^2 / 2 while the raw means vary by much more than eps
(``fairseq_seqvae/modules/fixed_scale_batch_norm.py`` derives it)."""

import pytest
import torch

from fairseq_seqvae.modules.fixed_scale_batch_norm import batch_kl_lower_bound
from fairseq_seqvae.modules.gaussian import gaussian_kl
from fairseq_seqvae.modules.poolers import POOLERS

LATENT = 8
LENGTHS = [5, 7, 9, 3, 12, 8, 6, 4, 10, 2, 11, 5]


def forward_with_raw_means(model, sample):
    """(posterior mean B x Z, logvar B x Z, the BN's input B x Z) of one forward pass."""
    captured = []
    hook = model.encoder.mean_bn.register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0])
    )
    try:
        _, extra = model(**sample["net_input"])
    finally:
        hook.remove()
    return extra["mean"], extra["logvar"], captured[0]


def batch_kl(mean, logvar):
    """Batch mean of the per-sentence KL, nats."""
    return gaussian_kl(mean, logvar).sum(1).mean()


@pytest.mark.parametrize("pooling", sorted(POOLERS))
@pytest.mark.parametrize("gamma", [0.3, 0.6, 1.0])
def test_batch_kl_is_at_least_the_bound(gamma, pooling, make_model, make_sentences,
                                        make_batch):
    """Through the real model in training mode, on several batches: the BN identity
    mean_i(mu_id^2) = gamma^2 v_d / (v_d + eps) + shift_d^2 holds, the KL is above the
    bound, and with raw means that vary (init 0.5) the bound is latent_dim * gamma^2 / 2."""
    model = make_model(seed=1, bn_gamma=gamma, pooling=pooling, latent_dim=LATENT,
                       init_scale=0.5)
    model.train()
    bn = model.encoder.mean_bn
    for seed in range(3):
        sample = make_batch(make_sentences(LENGTHS, seed=seed))
        mean, logvar, raw = forward_with_raw_means(model, sample)
        var = raw.detach().var(0, unbiased=False)
        expected_sq = gamma ** 2 * var / (var + bn.eps) + bn.shift.detach() ** 2
        torch.testing.assert_close(mean.detach().pow(2).mean(0), expected_sq,
                                   rtol=1e-4, atol=1e-6)
        bound = batch_kl_lower_bound(gamma, var, bn.eps)
        kl = batch_kl(mean, logvar)
        assert kl >= bound - 1e-5, f"batch KL {kl:.6f} below the BN-VAE bound {bound:.6f}"
        assert var.min() > 100 * bn.eps, "setup: raw means should vary by far more than eps"
        assert bound == pytest.approx(LATENT * gamma ** 2 / 2, rel=0.01)


def test_kl_minimization_cannot_cross_the_bound(make_model, make_sentences, make_batch):
    """Adam on the encoder with the batch-mean KL as the only loss: without BN the KL
    collapses to ~0; with BN it can only get there by shrinking the raw means' batch
    variance below eps, and it stays above the exact bound at every step. So the
    latent_dim * gamma^2 / 2 guarantee lasts while the raw means vary by more than eps."""
    gamma = 0.6
    sample = make_batch(make_sentences(LENGTHS, seed=0))
    for bn_gamma in (0.0, gamma):
        model = make_model(seed=0, bn_gamma=bn_gamma, latent_dim=LATENT, init_scale=0.3)
        model.train()
        optimizer = torch.optim.Adam(model.encoder.parameters(), lr=0.01)
        for step in range(120):
            if bn_gamma:
                mean, logvar, raw = forward_with_raw_means(model, sample)
                var = raw.detach().var(0, unbiased=False)
                bound = batch_kl_lower_bound(gamma, var, model.encoder.mean_bn.eps)
                kl = batch_kl(mean, logvar)
                assert kl >= bound - 1e-5, f"step {step}: KL {kl:.6f} < bound {bound:.6f}"
                if step == 0:
                    assert kl > 0.9 * LATENT * gamma ** 2 / 2
            else:
                _, extra = model(**sample["net_input"])
                kl = batch_kl(extra["mean"], extra["logvar"])
            optimizer.zero_grad()
            kl.backward()
            optimizer.step()
        if bn_gamma:
            assert var.min() < model.encoder.mean_bn.eps, "the escape route: v below eps"
        else:
            assert kl < 0.01


def test_gamma_is_fixed_and_the_shift_is_learned(make_model, make_sentences, make_batch):
    model = make_model(bn_gamma=0.6)
    bn = model.encoder.mean_bn
    assert [name for name, _ in bn.named_parameters()] == ["shift"]
    assert bn.gamma == 0.6
    sample = make_batch(make_sentences(LENGTHS))
    model.train()
    _, extra = model(**sample["net_input"])
    extra["mean"].sum().backward()
    assert bn.shift.grad is not None and bn.shift.grad.abs().sum() > 0
    assert model.encoder.to_posterior.weight.grad is not None


def test_evaluation_and_single_sentence_batches_use_running_statistics(
        make_model, make_sentences, make_batch):
    """At evaluation, and for a training batch of one sentence (which has no batch
    variance), a sentence's posterior mean does not depend on the rest of its batch."""
    model = make_model(bn_gamma=0.6, init_scale=0.5)
    sentences = make_sentences(LENGTHS)
    model.train()
    for _ in range(5):  # move the running statistics away from (0, 1)
        model(**make_batch(sentences)["net_input"])
    bn = model.encoder.mean_bn
    assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
    running = (bn.running_mean.clone(), bn.running_var.clone())

    alone = make_batch(sentences[:1])
    _, one = model(**alone["net_input"], sample_z=False)  # training mode, B = 1
    assert torch.equal(bn.running_mean, running[0]) and torch.equal(bn.running_var, running[1])
    model.eval()
    with torch.no_grad():
        _, full = model(**make_batch(sentences)["net_input"], sample_z=False)
        _, single = model(**alone["net_input"], sample_z=False)
    torch.testing.assert_close(full["mean"][0], single["mean"][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(one["mean"][0].detach(), single["mean"][0], rtol=1e-5, atol=1e-6)


def test_off_by_default(make_model):
    model = make_model()
    assert model.encoder.mean_bn is None
    assert not [k for k in model.state_dict() if "mean_bn" in k]
