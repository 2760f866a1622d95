"""The ELBO criterion on a tiny real model and batches from the real collater: padding
additivity, summable logging outputs, reference formulas for rec and KL, free bits,
the LSTM-LM case and a fixed key set."""

import math

import pytest
import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.logging.meters import AverageMeter, SumMeter
from omegaconf import OmegaConf
from torch.distributions import Normal, kl_divergence

import fairseq_seqvae.criterions.seqvae_elbo as seqvae_elbo
import fairseq_seqvae.models.seqvae_lstm as seqvae_lstm
from fairseq_seqvae.criterions.seqvae_elbo import SeqVAEELBOCriterion
from fairseq_seqvae.modules.gaussian import mutual_information

LENGTHS = [3, 5, 2, 6, 1, 4]
SPLIT = 2  # sub-batches LENGTHS[:SPLIT] and LENGTHS[SPLIT:]
ADDITIVE_KEYS = ["loss", "rec", "kl", "kl_weight", "ntokens", "nsentences", "sample_size"]
EVAL_ADDITIVE_KEYS = ADDITIVE_KEYS + ["mean_sum", "mean_sq_sum"]
LN2 = math.log(2)


@pytest.fixture
def fixed_noise(monkeypatch):
    """z = mean + eps * std with one fixed eps for every sentence, so a sentence gets the
    same z whatever batch it is in (the real sampler draws B x Z numbers per batch)."""
    eps = torch.tensor([0.9, -1.3, 0.4, 1.7, -0.2, 0.6, -0.8, 1.1])

    def reparameterize(mean, logvar):
        return mean + eps[: mean.size(-1)].to(mean) * torch.exp(0.5 * logvar)

    monkeypatch.setattr(seqvae_lstm, "reparameterize", reparameterize)


@pytest.fixture
def sentences(make_sentences):
    return make_sentences(LENGTHS, seed=3)


def _assert_close(a, b, key=""):
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=lambda m: f"{key}: {m}")


def _run(criterion, model, sample, seed=0):
    torch.manual_seed(seed)
    return criterion(model, sample)


def _reduce(*calls):
    """Smoothed metrics and raw meters after calling reduce_metrics once per argument
    (a list of logging outputs) inside one fresh aggregation context."""
    with metrics.aggregate(new_root=True) as agg:
        for logs in calls:
            SeqVAEELBOCriterion.reduce_metrics(logs)
        values = agg.get_smoothed_values()
        raw = {k: _raw_value(agg, k) for k in agg.keys()}
    return values, raw


def _raw_value(agg, key):
    """A meter's unrounded value (smoothed values are rounded for display)."""
    meter = agg[key]
    if isinstance(meter, AverageMeter):
        return meter.avg
    if isinstance(meter, SumMeter):
        return meter.sum
    return agg.get_smoothed_value(key)  # derived: ppl, au


def _sum_logs(logs):
    return {k: sum(log[k] for log in logs) for k in logs[0]}


# ---- (a) padding additivity ----------------------------------------------------------


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_batch_equals_sum_of_sub_batches(
    fixed_noise, make_model, make_criterion, make_batch, sentences, train
):
    model = make_model()
    model.train(train)
    criterion = make_criterion(kl_max=0.7)
    _, _, whole = criterion(model, make_batch(sentences))
    _, _, first = criterion(model, make_batch(sentences[:SPLIT]))
    _, _, second = criterion(model, make_batch(sentences[SPLIT:]))
    keys = ADDITIVE_KEYS if train else EVAL_ADDITIVE_KEYS
    for key in keys:
        _assert_close(whole[key], first[key] + second[key], key)
    assert whole["ntokens"] == sum(LENGTHS) + len(LENGTHS)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_appended_padding_changes_nothing(
    make_model, make_criterion, make_batch, append_pad, sentences, train
):
    model = make_model()
    model.train(train)
    criterion = make_criterion(kl_max=0.7, free_bits=0.05)
    sample = make_batch(sentences)
    loss, size, log = _run(criterion, model, sample)
    loss_p, size_p, log_p = _run(criterion, model, append_pad(sample, 4))
    assert size_p == size
    _assert_close(loss_p, loss, "loss")
    assert log_p.keys() == log.keys()
    for key in log:  # in eval mode this includes mi
        _assert_close(log_p[key], log[key], key)


def test_mi_is_he_et_al_estimate_on_the_sampled_z_times_batch_size(
    fixed_noise, make_model, make_criterion, make_batch, sentences
):
    model = make_model(init_scale=0.5)
    model.eval()
    sample = make_batch(sentences)
    net = sample["net_input"]
    _, _, log = make_criterion()(model, sample)
    with torch.no_grad():
        enc = model.encoder(net["src_tokens"], net["src_lengths"])  # the fixed-noise z
    assert not torch.allclose(enc["z"], enc["mean"])
    ref = mutual_information(enc["mean"], enc["logvar"], enc["z"]) * len(LENGTHS)
    _assert_close(log["mi"], ref, "mi")
    _assert_close(log["mean_sum"], enc["mean"].sum(0), "mean_sum")
    _assert_close(log["mean_sq_sum"], enc["mean"].pow(2).sum(0), "mean_sq_sum")


# ---- (b) logging outputs are summable ------------------------------------------------


@pytest.fixture
def two_eval_logs(make_model, make_criterion, make_batch, sentences):
    model = make_model(init_scale=0.5)  # posterior means that vary across sentences
    model.eval()
    criterion = make_criterion(kl_max=0.5)
    _, _, first = _run(criterion, model, make_batch(sentences[:SPLIT]), seed=1)
    _, _, second = _run(criterion, model, make_batch(sentences[SPLIT:]), seed=2)
    return model, first, second


def test_reduce_of_summed_outputs_equals_reduce_of_list(two_eval_logs):
    _, first, second = two_eval_logs
    values, raw = _reduce([first, second])
    values_sum, raw_sum = _reduce([_sum_logs([first, second])])
    for key in ["loss", "nll_loss", "ppl", "rec", "kl", "elbo", "kl_weight", "mi", "au"]:
        assert key in values, key
    assert values.keys() == values_sum.keys()
    for key in values:
        _assert_close(values_sum[key], values[key], key)
    assert raw.keys() == raw_sum.keys()
    for key in raw:  # unrounded, hidden accumulators too
        _assert_close(raw_sum[key], raw[key], key)


def test_reduce_per_batch_equals_reduce_once(two_eval_logs):
    """fairseq validation calls reduce_metrics once per batch into one aggregator."""
    _, first, second = two_eval_logs
    values, raw = _reduce([first, second])
    values_steps, raw_steps = _reduce([first], [second])
    assert values.keys() == values_steps.keys()
    for key in values:
        _assert_close(values_steps[key], values[key], key)
    for key in raw:
        _assert_close(raw_steps[key], raw[key], key)


def test_reduced_metrics_match_definitions(two_eval_logs, make_batch, sentences, monkeypatch):
    model, first, second = two_eval_logs
    with torch.no_grad():
        net = make_batch(sentences)["net_input"]
        means = model.encoder(net["src_tokens"], net["src_lengths"], sample_z=False)["mean"]
    var = means.double().var(dim=0, unbiased=True)  # ddof = 1 over the whole "valid set"
    # a threshold between the variances, so the count is not trivially 0 or Z
    threshold = var.sort().values[1:3].mean().item()
    monkeypatch.setattr(seqvae_elbo, "AU_THRESHOLD", threshold)
    values, raw = _reduce([first], [second])
    tot = _sum_logs([first, second])
    nsent, ntok = tot["nsentences"], tot["ntokens"]
    assert nsent == len(LENGTHS)
    _assert_close(raw["loss"], tot["loss"] / tot["sample_size"] / LN2, "loss")
    _assert_close(raw["rec"], tot["rec"] / nsent, "rec")
    _assert_close(raw["kl"], tot["kl"] / nsent, "kl")
    _assert_close(raw["elbo"], (tot["rec"] + tot["kl"]) / nsent, "elbo")
    _assert_close(raw["nll_loss"], (tot["rec"] + tot["kl"]) / ntok / LN2, "nll_loss")
    assert values["ppl"] == pytest.approx(2 ** raw["nll_loss"].item(), rel=1e-2)
    _assert_close(raw["kl_weight"], 0.5, "kl_weight")
    _assert_close(raw["mi"], (first["mi"] + second["mi"]) / nsent, "mi")
    assert values["au"] == int((var >= threshold).sum())
    assert 0 < values["au"] < var.numel()


# ---- (c, d, e) reference formulas ----------------------------------------------------


def test_rec_equals_cross_entropy_of_full_logits(make_model, make_criterion, make_batch, sentences):
    model = make_model()
    model.eval()
    sample = make_batch(sentences)
    net = sample["net_input"]
    _, _, log = _run(make_criterion(), model, sample, seed=5)
    torch.manual_seed(5)  # the same z as inside the criterion
    with torch.no_grad():
        enc = model.encoder(net["src_tokens"], net["src_lengths"])
        logits = model.decoder(net["prev_output_tokens"], enc)[0]  # B x T x V
    target = sample["target"]
    pad = model.decoder.padding_idx
    manual = 0.0
    for i in range(target.size(0)):
        for t in range(target.size(1)):
            if target[i, t] != pad:
                manual -= torch.log_softmax(logits[i, t].double(), -1)[target[i, t]].item()
    _assert_close(log["rec"], manual, "rec")
    ce = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=pad, reduction="sum")
    _assert_close(log["rec"], ce, "rec")


def test_kl_equals_analytic_formula(make_model, make_criterion, make_batch, sentences):
    model = make_model(init_scale=0.5)
    model.eval()
    sample = make_batch(sentences)
    net = sample["net_input"]
    _, _, log = _run(make_criterion(), model, sample)
    with torch.no_grad():
        enc = model.encoder(net["src_tokens"], net["src_lengths"], sample_z=False)
    q = Normal(enc["mean"].double(), torch.exp(0.5 * enc["logvar"].double()))
    ref = kl_divergence(q, Normal(0.0, 1.0)).sum()
    assert ref > 0.1
    _assert_close(log["kl"], ref, "kl")


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_loss_is_rec_plus_beta_kl_and_elbo_is_rec_plus_kl(
    make_model, make_criterion, make_batch, sentences, beta
):
    model = make_model(init_scale=0.5)
    model.train()
    loss, sample_size, log = _run(make_criterion(kl_max=beta), model, make_batch(sentences))
    assert sample_size == log["ntokens"]
    _assert_close(loss, log["rec"] + beta * log["kl"], "loss")
    _assert_close(log["loss"], loss, "logged loss")
    values, _ = _reduce([log])
    n = len(LENGTHS)
    assert values["elbo"] == pytest.approx((log["rec"] + log["kl"]).item() / n, abs=1e-3)
    assert values["elbo"] == pytest.approx(values["rec"] + values["kl"], abs=2e-3)


def test_sentence_avg_sample_size(make_model, make_criterion, make_batch, sentences):
    _, sample_size, log = _run(make_criterion(sentence_avg=True), make_model(), make_batch(sentences))
    assert sample_size == log["sample_size"] == len(LENGTHS)


def _encoder_grads(model, criterion, sample, seed=0):
    model.zero_grad()
    loss, _, log = _run(criterion, model, sample, seed)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.encoder.named_parameters()}
    return loss, log, grads


def test_free_bits_large_gives_constant_objective_and_no_kl_gradient(
    make_model, make_criterion, make_batch, sentences
):
    model = make_model(init_scale=0.5)
    model.train()
    sample = make_batch(sentences)
    latent, bsz, fb, beta = 4, len(LENGTHS), 100.0, 0.8
    loss, log, grads_fb = _encoder_grads(model, make_criterion(kl_max=beta, free_bits=fb), sample)
    _assert_close(loss - log["rec"], beta * fb * bsz * latent, "kl objective")
    assert log["kl"] < fb * bsz * latent  # the logged kl is the true KL, not clamped
    # the KL term adds no gradient: same encoder gradient as the reconstruction alone
    _, _, grads_rec = _encoder_grads(model, make_criterion(kl_max=0.0), sample)
    _, _, grads_fb0 = _encoder_grads(model, make_criterion(kl_max=beta, free_bits=0.0), sample)
    for name in grads_rec:
        torch.testing.assert_close(grads_fb[name], grads_rec[name], rtol=1e-5, atol=1e-7)
    diff = sum((grads_fb0[n] - grads_rec[n]).abs().sum() for n in grads_rec)
    assert diff > 1e-4, "with free bits 0 the KL must push the encoder"


def _posterior_kl(model, sample):
    """KL(q(z|x) || N(0, I)) of each sentence and dimension (B x Z), in float64."""
    net = sample["net_input"]
    with torch.no_grad():
        enc = model.encoder(net["src_tokens"], net["src_lengths"], sample_z=False)
    q = Normal(enc["mean"].double(), torch.exp(0.5 * enc["logvar"].double()))
    return kl_divergence(q, Normal(0.0, 1.0))


def test_free_bits_clamps_each_dimension(make_model, make_criterion, make_batch, sentences):
    model = make_model(init_scale=0.5)
    model.train()
    sample = make_batch(sentences)
    kl_dim = _posterior_kl(model, sample).sum(0)  # Z, summed over sentences
    bsz = len(LENGTHS)
    fb = (kl_dim.sort().values[1:3].mean() / bsz).item()  # some dims below, some above
    expected = kl_dim.clamp(min=fb * bsz).sum()
    assert kl_dim.sum() < expected
    loss, _, log = _run(make_criterion(kl_max=1.0, free_bits=fb), model, sample)
    _assert_close(loss - log["rec"], expected, "kl objective")


def test_free_bits_per_sentence_clamps_each_sentence_and_dimension(
    make_model, make_criterion, make_batch, sentences
):
    """--free-bits-mode sentence (Li et al. 2019's code): max(lambda, KL_bd) for each
    sentence b and dimension d, which is more than the batch rule's max(B lambda, sum_b KL_bd)
    when a dimension's KL is below lambda in some sentences and above it in others."""
    model = make_model(init_scale=0.5)
    model.train()
    sample = make_batch(sentences)
    kl = _posterior_kl(model, sample)  # B x Z
    fb = kl.median().item()  # half of the (sentence, dimension) pairs below
    expected = kl.clamp(min=fb).sum()
    batch_rule = kl.sum(0).clamp(min=fb * len(LENGTHS)).sum()
    assert expected > batch_rule + 1e-3
    loss, _, log = _run(make_criterion(kl_max=1.0, free_bits=fb, free_bits_mode="sentence"),
                        model, sample)
    _assert_close(loss - log["rec"], expected, "kl objective")
    _assert_close(log["kl"], kl.sum(), "kl")  # the logged kl is the true KL


def test_criterion_builds_from_a_checkpoint_config_without_free_bits_mode(task):
    """A checkpoint saved before --free-bits-mode existed stores a criterion config without
    it; fairseq builds the criterion from that config (scripts/grad_norms.py does), which
    then keeps the batch rule those runs trained with."""
    fields = dict(_name="seqvae_elbo", kl_schedule="constant", kl_start=0.0, kl_max=1.0,
                  kl_warmup_updates=100, kl_hold_updates=0, kl_cycle_updates=100,
                  kl_cycle_ratio=0.5, kl_num_cycles=0, free_bits=0.5, sentence_avg=True)
    criterion = SeqVAEELBOCriterion.build_criterion(OmegaConf.create(fields), task)
    assert criterion.free_bits_mode == "batch" and criterion.free_bits == 0.5


def test_criterion_rejects_bad_config(make_criterion):
    with pytest.raises(ValueError):
        make_criterion(free_bits=-1.0)
    with pytest.raises(ValueError):
        make_criterion(kl_cycle_ratio=1.5)
    with pytest.raises(ValueError):
        make_criterion(kl_schedule="cyclical", kl_cycle_updates=0)


# ---- (f) LSTM language model ---------------------------------------------------------


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_lstm_lm_has_no_kl_and_no_latent_metrics(
    make_model, make_criterion, make_batch, sentences, train
):
    model = make_model(latent_dim=0)
    model.train(train)
    assert sum(p.numel() for p in model.encoder.parameters()) == 0
    loss, _, log = _run(make_criterion(kl_max=1.0, free_bits=2.0), model, make_batch(sentences))
    assert log["kl"] == 0
    _assert_close(loss, log["rec"], "loss")
    assert set(log) == set(ADDITIVE_KEYS)
    values, raw = _reduce([log])
    assert "mi" not in values and "au" not in values
    assert not any(k.startswith("_") for k in raw)
    _assert_close(raw["nll_loss"], log["rec"] / log["ntokens"] / LN2, "nll_loss")
    _assert_close(raw["elbo"], raw["rec"], "elbo")


# ---- (g) fixed key set ---------------------------------------------------------------


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_key_set_is_fixed_across_batches(make_model, make_criterion, make_batch, sentences, train):
    model = make_model()
    model.train(train)
    criterion = make_criterion(kl_schedule="linear", free_bits=0.1)
    batches = [sentences, sentences[:1], sentences[2:5], sentences[4:5]]
    key_sets = []
    for n, batch in enumerate(batches):
        model.set_num_updates(n * 37)
        _, _, log = _run(criterion, model, make_batch(batch))
        key_sets.append(frozenset(log))
        if not train:
            assert log["mean_sum"].shape == log["mean_sq_sum"].shape == (4,)
    assert len(set(key_sets)) == 1
    expected = set(ADDITIVE_KEYS) | ({"mi", "mean_sum", "mean_sq_sum"} if not train else set())
    assert key_sets[0] == expected
