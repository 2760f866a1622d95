"""The decoder: incremental decoding (with beam-style reordering) equals teacher forcing,
the latent enters through the initial state and every input, latent_dim 0 is a plain
LSTM LM, word dropout, and the checkpoint dictionary check."""

import pytest
import torch
from fairseq.data import Dictionary

LENGTHS = [4, 6, 1, 3, 5]


@pytest.fixture
def batch(make_sentences, make_batch):
    return make_batch(make_sentences(LENGTHS, seed=7))


def _teacher_forced(model, net, enc):
    with torch.no_grad():
        return model.decoder(net["prev_output_tokens"], enc)[0]  # B x T x V


def _encode(model, net):
    with torch.no_grad():
        return model.encoder(net["src_tokens"], net["src_lengths"], sample_z=False)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("latent_dim", [4, 0])
def test_incremental_equals_teacher_forced(make_model, batch, layers, latent_dim):
    model = make_model(decoder_layers=layers, latent_dim=latent_dim)
    model.eval()
    net = batch["net_input"]
    enc = _encode(model, net)
    full = _teacher_forced(model, net, enc)
    prev = net["prev_output_tokens"]
    state = {}
    with torch.no_grad():
        for t in range(prev.size(1)):
            step = model.decoder(prev[:, : t + 1], enc, incremental_state=state)[0]
            assert step.shape == (prev.size(0), 1, full.size(-1))
            torch.testing.assert_close(step[:, 0], full[:, t], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "order", [[2, 0, 4, 1, 3], [1, 1, 0, 4, 4]], ids=["permutation", "beam-repeats"]
)
@pytest.mark.parametrize("switch_at", [1, 3])
def test_incremental_with_reordering(make_model, batch, order, switch_at):
    model = make_model(decoder_layers=2)
    model.eval()
    net = batch["net_input"]
    enc = _encode(model, net)
    full = _teacher_forced(model, net, enc)
    prev = net["prev_output_tokens"]
    new_order = torch.tensor(order)
    state = {}
    with torch.no_grad():
        for t in range(prev.size(1)):
            if t == switch_at:
                model.decoder.reorder_incremental_state(state, new_order)
                enc = model.encoder.reorder_encoder_out(enc, new_order)
                prev = prev.index_select(0, new_order)
                full = full.index_select(0, new_order)
            step = model.decoder(prev[:, : t + 1], enc, incremental_state=state)[0]
            torch.testing.assert_close(step[:, 0], full[:, t], rtol=0, atol=1e-5)


def test_reorder_encoder_out_reorders_every_tensor(make_model, batch):
    model = make_model()
    enc = _encode(model, batch["net_input"])
    new_order = torch.tensor([3, 3, 0, 1, 2])
    reordered = model.encoder.reorder_encoder_out(enc, new_order)
    assert reordered.keys() == enc.keys()
    for key in enc:
        torch.testing.assert_close(reordered[key], enc[key][new_order], rtol=0, atol=0)


def test_latent_sets_initial_state_and_every_input(make_model, batch):
    """Reference: z concatenated to each embedding, c0 = W z + b per layer, h0 = tanh(c0)."""
    model = make_model(decoder_layers=2)
    model.eval()
    dec = model.decoder
    prev = batch["net_input"]["prev_output_tokens"]
    bsz, tlen = prev.shape
    g = torch.Generator().manual_seed(0)
    z = torch.randn(bsz, 4, generator=g)
    with torch.no_grad():
        logits = dec(prev, {"z": z})[0]
        x = torch.cat([dec.embed_tokens(prev), z.unsqueeze(1).expand(bsz, tlen, 4)], dim=-1)
        c0 = dec.latent_to_state(z).view(bsz, 2, -1).transpose(0, 1).contiguous()
        out, _ = dec.lstm(x, (torch.tanh(c0), c0))
        ref = dec.output_projection(out)
        other = dec(prev, {"z": z + 1.0})[0]
    assert dec.lstm.input_size == 8 + 4
    torch.testing.assert_close(logits, ref, rtol=0, atol=1e-6)
    assert not torch.allclose(other, logits, atol=1e-4)


def test_latent_dim_zero_is_plain_lstm_lm(make_model, batch):
    model = make_model(latent_dim=0, decoder_layers=2)
    model.eval()
    dec = model.decoder
    assert dec.latent_to_state is None
    assert dec.lstm.input_size == 8  # decoder_embed_dim, nothing concatenated
    net = batch["net_input"]
    enc = _encode(model, net)
    assert enc["z"].shape == (len(LENGTHS), 0)
    assert dec.initial_state(enc["z"], len(LENGTHS), enc["z"]) is None
    prev = net["prev_output_tokens"]
    with torch.no_grad():
        logits = dec(prev, enc)[0]
        out, _ = dec.lstm(dec.embed_tokens(prev))  # zero initial state
        ref = dec.output_projection(out)
    torch.testing.assert_close(logits, ref, rtol=0, atol=1e-6)
    # the source cannot influence an LM
    other_src = net["src_tokens"].flip(0)
    with torch.no_grad():
        x, _ = model(other_src, net["src_lengths"].flip(0), prev)
    torch.testing.assert_close(x, logits, rtol=0, atol=0)


def _decoder_inputs(model, prev, z):
    """The token ids the decoder's embedding actually sees."""
    seen = []
    handle = model.decoder.embed_tokens.register_forward_hook(
        lambda module, inputs, output: seen.append(inputs[0].clone())
    )
    try:
        model.decoder(prev, {"z": z})
    finally:
        handle.remove()
    return seen[0]


def test_word_dropout_replaces_only_words_and_only_in_training(dictionary, make_model, batch):
    prev = batch["net_input"]["prev_output_tokens"]
    z = torch.zeros(prev.size(0), 4)
    pad, unk, bos = dictionary.pad(), dictionary.unk(), dictionary.bos()
    is_pad = prev.eq(pad)
    is_word = ~is_pad
    is_word[:, 0] = False
    assert prev[:, 0].eq(bos).all()

    model = make_model(word_dropout=1.0)
    model.train()
    seen = _decoder_inputs(model, prev, z)
    assert seen[is_word].eq(unk).all()
    assert torch.equal(seen[~is_word], prev[~is_word])  # BOS and pads untouched

    model.eval()
    assert torch.equal(_decoder_inputs(model, prev, z), prev)

    model = make_model(word_dropout=0.5)
    model.train()
    torch.manual_seed(0)
    seen = _decoder_inputs(model, prev, z)
    changed = seen.ne(prev)
    assert not changed[~is_word].any()
    assert seen[changed].eq(unk).all()
    assert 0 < changed.sum() < is_word.sum()


def test_word_dropout_off_by_default_in_training(make_model, batch):
    prev = batch["net_input"]["prev_output_tokens"]
    model = make_model()
    model.train()
    assert torch.equal(_decoder_inputs(model, prev, torch.zeros(prev.size(0), 4)), prev)


def test_load_state_dict_rejects_other_dictionary(make_model):
    bigger = Dictionary()
    for i in range(25):
        bigger.add_symbol(f"w{i}")
    bigger.finalize(padding_factor=1)
    other = make_model(dictionary=bigger)
    model = make_model()
    assert other.decoder.embed_tokens.num_embeddings != model.decoder.embed_tokens.num_embeddings
    with pytest.raises(ValueError, match="dictionary mismatch"):
        model.load_state_dict(other.state_dict())


def test_load_state_dict_round_trip_and_architecture_mismatch(make_model):
    model, twin = make_model(seed=0), make_model(seed=1)
    assert not torch.equal(model.decoder.output_projection.weight, twin.decoder.output_projection.weight)
    twin.load_state_dict(model.state_dict())
    for (name, p), (_, q) in zip(model.state_dict().items(), twin.state_dict().items()):
        assert torch.equal(p, q), name
    with pytest.raises(ValueError):
        make_model(decoder_layers=2).load_state_dict(model.state_dict())


def test_checkpoint_without_dictionary_fingerprint_is_a_clear_error(make_model):
    model = make_model()
    state = {k: v for k, v in model.state_dict().items() if k != "dictionary_hash"}
    with pytest.raises(ValueError, match=r"does not match.*missing \['dictionary_hash'\]"):
        make_model().load_state_dict(state)
