"""Every registered pooler ignores padding, alone and inside the real SeqVAEEncoder;
the built-in poolers equal brute-force per-sentence computations."""

import pytest
import torch

from fairseq_seqvae.modules.poolers import POOLERS

ALL_POOLERS = sorted(POOLERS)
LENGTHS = [6, 2, 4, 1]  # words per sentence; the collater adds EOS


def _states(lengths, channels=5, seed=0):
    """B x T x C states as the encoder gives them (zeros at pads) and the pad mask.
    Real values are mostly negative, so an unmasked zero pad would win a max."""
    g = torch.Generator().manual_seed(seed)
    bsz, tlen = len(lengths), max(lengths)
    states = torch.randn(bsz, tlen, channels, generator=g, dtype=torch.float64) - 2.0
    mask = torch.arange(tlen).unsqueeze(0) >= torch.tensor(lengths).unsqueeze(1)  # B x T
    states = states.masked_fill(mask.unsqueeze(-1), 0.0)
    final = torch.stack([states[i, n - 1] for i, n in enumerate(lengths)])  # B x C
    return states, mask, final


def _append_pad_states(states, mask, extra):
    bsz, _, channels = states.shape
    states = torch.cat([states, states.new_zeros(bsz, extra, channels)], dim=1)
    mask = torch.cat([mask, mask.new_ones(bsz, extra)], dim=1)
    return states, mask


@pytest.mark.parametrize("name", ALL_POOLERS)
@pytest.mark.parametrize("extra", [1, 5])
def test_pooler_invariant_to_appended_padding(name, extra):
    pool = POOLERS[name]
    states, mask, final = _states(LENGTHS)
    pooled = pool(states, mask, final)
    assert pooled.shape == final.shape
    pooled_padded = pool(*_append_pad_states(states, mask, extra), final)
    torch.testing.assert_close(pooled_padded, pooled, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ALL_POOLERS)
def test_pooler_depends_on_each_sentence_alone(name):
    """Changing one sentence's states changes only that sentence's pooled row."""
    pool = POOLERS[name]
    states, mask, final = _states(LENGTHS)
    pooled = pool(states, mask, final)
    states2, final2 = states.clone(), final.clone()
    states2[1, : LENGTHS[1]] += 1.0
    final2[1] += 1.0
    pooled2 = pool(states2, mask, final2)
    keep = [0, 2, 3]
    torch.testing.assert_close(pooled2[keep], pooled[keep], rtol=0, atol=0)
    assert not torch.allclose(pooled2[1], pooled[1])


def test_max_pool_brute_force():
    states, mask, final = _states(LENGTHS)
    pooled = POOLERS["max"](states, mask, final)
    for i, n in enumerate(LENGTHS):
        ref = torch.stack([states[i, t] for t in range(n)]).max(dim=0).values
        torch.testing.assert_close(pooled[i], ref, rtol=0, atol=0)


def test_mean_pool_brute_force():
    states, mask, final = _states(LENGTHS)
    pooled = POOLERS["mean"](states, mask, final)
    for i, n in enumerate(LENGTHS):
        ref = sum(states[i, t] for t in range(n)) / n
        torch.testing.assert_close(pooled[i], ref, rtol=1e-12, atol=1e-12)


def test_last_pool_is_final_state():
    states, mask, final = _states(LENGTHS)
    torch.testing.assert_close(POOLERS["last"](states, mask, final), final, rtol=0, atol=0)


# ---- through the real encoder --------------------------------------------------------

ENCODER_SHAPES = [
    pytest.param(False, 1, "concat", id="uni1"),
    pytest.param(False, 2, "concat", id="uni2"),
    pytest.param(True, 1, "concat", id="bi1"),
    pytest.param(True, 2, "concat", id="bi2"),
    pytest.param(True, 1, "mean", id="bi1-mean"),
    pytest.param(True, 2, "mean", id="bi2-mean"),  # Xu, Cheung & Cao 2020's encoder
]


@pytest.fixture
def encoder_batch(make_sentences, make_batch):
    return make_batch(make_sentences(LENGTHS, seed=1))


def _encoder(make_model, name, bidirectional, layers, merge):
    model = make_model(pooling=name, encoder_bidirectional=bidirectional, encoder_layers=layers,
                       encoder_merge=merge)
    model.eval()
    return model.encoder


@pytest.mark.parametrize("name", ALL_POOLERS)
@pytest.mark.parametrize("bidirectional,layers,merge", ENCODER_SHAPES)
def test_encoder_outputs_invariant_to_appended_padding(
    make_model, encoder_batch, append_pad, name, bidirectional, layers, merge
):
    encoder = _encoder(make_model, name, bidirectional, layers, merge)
    net = encoder_batch["net_input"]
    with torch.no_grad():
        out = encoder(net["src_tokens"], net["src_lengths"], sample_z=False)
        padded = append_pad(encoder_batch, 3)["net_input"]
        out_padded = encoder(padded["src_tokens"], padded["src_lengths"], sample_z=False)
    assert out["pooled"].shape == (len(LENGTHS), encoder.feature_dim)
    for key in ["pooled", "mean", "logvar", "z"]:
        torch.testing.assert_close(out_padded[key], out[key], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ALL_POOLERS)
@pytest.mark.parametrize("bidirectional,layers,merge", ENCODER_SHAPES)
def test_encoder_gradient_never_reaches_pad_positions(
    make_model, encoder_batch, name, bidirectional, layers, merge
):
    encoder = _encoder(make_model, name, bidirectional, layers, merge)
    captured = {}

    def keep_output(module, inputs, output):
        output.retain_grad()
        captured["emb"] = output

    handle = encoder.embed_tokens.register_forward_hook(keep_output)
    try:
        net = encoder_batch["net_input"]
        out = encoder(net["src_tokens"], net["src_lengths"], sample_z=False)
    finally:
        handle.remove()
    g = torch.Generator().manual_seed(0)
    w = torch.randn(out["pooled"].shape, generator=g)
    (out["pooled"] * w).sum().add(out["mean"].sum() + out["logvar"].sum()).backward()

    grad = captured["emb"].grad  # B x T x E
    pad = net["src_tokens"].eq(encoder.padding_idx)
    assert pad.any()
    assert torch.count_nonzero(grad[pad]) == 0
    # every real state depends on the sentence's first embedding (forward direction)
    assert (grad[:, 0].abs().sum(-1) > 0).all()
    if name != "max" or bidirectional:
        # these depend on every real position; a unidirectional max may not
        assert (grad[~pad].abs().sum(-1) > 0).all()


def _reference_pooled(encoder, tokens, name, merge):
    """Runs the encoder's LSTM on one unpadded sentence, merges its directions and
    pools by hand."""
    emb = encoder.embed_tokens(tokens.unsqueeze(0))  # 1 x T x E
    states, (h_n, _) = encoder.lstm(emb)  # 1 x T x C
    num_dirs = 2 if encoder.lstm.bidirectional else 1
    hidden = encoder.lstm.hidden_size
    if num_dirs == 2 and merge == "mean":
        states = (states[..., :hidden] + states[..., hidden:]) / 2  # 1 x T x H
    if name == "last":
        final = [h_n[-num_dirs + d, 0] for d in range(num_dirs)]
        final = (final[0] + final[1]) / 2 if num_dirs == 2 and merge == "mean" else torch.cat(final)
        if num_dirs == 1:  # the forward state at the last real position
            torch.testing.assert_close(final, states[0, -1], rtol=0, atol=1e-6)
        return final
    if name == "max":
        return states[0].max(dim=0).values
    if name == "mean":
        return states[0].mean(dim=0)
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["last", "max", "mean"])
@pytest.mark.parametrize("bidirectional,layers,merge", ENCODER_SHAPES)
def test_encoder_pooled_equals_each_sentence_alone(
    make_model, encoder_batch, name, bidirectional, layers, merge
):
    encoder = _encoder(make_model, name, bidirectional, layers, merge)
    net = encoder_batch["net_input"]
    with torch.no_grad():
        out = encoder(net["src_tokens"], net["src_lengths"], sample_z=False)
        for i, n in enumerate(net["src_lengths"].tolist()):
            ref = _reference_pooled(encoder, net["src_tokens"][i, :n], name, merge)
            torch.testing.assert_close(out["pooled"][i], ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bidirectional,merge,channels", [
    (False, "concat", 8), (False, "mean", 8), (True, "concat", 16), (True, "mean", 8),
])
def test_merge_sets_feature_size_and_posterior_bias_is_optional(
    make_model, bidirectional, merge, channels
):
    """mean halves a bidirectional encoder's features (a unidirectional one has a
    single direction to keep); --no-posterior-bias drops the posterior layer's bias."""
    encoder = make_model(encoder_bidirectional=bidirectional, encoder_merge=merge).encoder
    assert encoder.feature_dim == channels == encoder.to_posterior.in_features
    assert encoder.to_posterior.bias is not None
    no_bias = make_model(encoder_bidirectional=bidirectional, encoder_merge=merge,
                         no_posterior_bias=True).encoder
    assert no_bias.to_posterior.bias is None
    assert "encoder.to_posterior.bias" not in make_model(no_posterior_bias=True).state_dict()
