"""Generation: ``decoding.decode`` against brute-force references (step-by-step argmax
over the full decoder, exhaustive search for beam search, the nucleus for top-p), the
``SeqVAE`` generation methods and ``seqvae-generate`` on a trained checkpoint, and
its errors for bad input."""

import io
import itertools
import json
import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cli_utils, package or not
import cli_utils as cu  # noqa: E402

from fairseq_seqvae.cli import generate  # noqa: E402
from fairseq_seqvae.decoding import decode  # noqa: E402
from fairseq_seqvae.hub import SeqVAE  # noqa: E402

LATENT_DIM = 4  # conftest's TINY and seqvae_lstm_tiny


def codes(n, seed=0, dim=LATENT_DIM):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def next_lprobs(model, prefix, z, temperature=1.0):
    """Reference: log-probabilities of the next token after ``prefix`` (1-D, BOS
    first) from the full, non-incremental decoder; <pad>, BOS and (for the first
    word) EOS masked."""
    with torch.no_grad():
        logits = model.decoder(prefix.unsqueeze(0), {"z": z.unsqueeze(0)})[0][0, -1]
    lprobs = F.log_softmax(logits / temperature, dim=-1)
    d = model.decoder.dictionary
    lprobs[[d.pad(), d.bos()]] = -math.inf
    if prefix.numel() == 1:
        lprobs[d.eos()] = -math.inf
    return lprobs


def reference_greedy(model, z, max_len):
    d = model.decoder.dictionary
    prefix = torch.tensor([d.bos()])
    while prefix.numel() <= max_len:
        token = next_lprobs(model, prefix, z).argmax()
        if token == d.eos():
            break
        prefix = torch.cat([prefix, token.view(1)])
    return prefix[1:]


def sentence_score(model, words, z, lenpen):
    """Reference beam objective: sum of log p(word) and log p(EOS) by teacher forcing,
    divided by (words + 1) ** lenpen."""
    d = model.decoder.dictionary
    prev = torch.cat([torch.tensor([d.bos()]), words])
    target = torch.cat([words, torch.tensor([d.eos()])])
    with torch.no_grad():
        logits = model.decoder(prev.unsqueeze(0), {"z": z.unsqueeze(0)})[0][0]
    total = F.log_softmax(logits, dim=-1).gather(1, target.unsqueeze(1)).sum().item()
    return total / (words.numel() + 1) ** lenpen


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread, as the CLI runs get: these small step-by-step loops are
    several times slower with two threads on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def peaky_model(make_model):
    """A random tiny model with peaked next-word distributions (large weights), so
    greedy, beam and sampling differ."""
    return make_model(seed=3, init_scale=1.0).eval()


# ---- decode: unit tests against references ------------------------------------------


def test_greedy_equals_stepwise_argmax_of_full_decoder(peaky_model):
    z = codes(6)
    max_len = 7
    got = decode(peaky_model, z, max_len=max_len)
    want = [reference_greedy(peaky_model, zi, max_len) for zi in z]
    assert [g.tolist() for g in got] == [w.tolist() for w in want]
    lengths = {g.numel() for g in got}
    assert max_len in lengths and min(lengths) < max_len, (
        "the codes should cover both an EOS and a max_len cut-off"
    )


def test_decoding_is_incremental(peaky_model):
    """The decoder LSTM sees one new token per step, never the prefix again."""
    widths = []
    handle = peaky_model.decoder.lstm.register_forward_hook(
        lambda module, inputs, output: widths.append(inputs[0].size(1)))
    try:
        for strategy in ("greedy", "beam", "sample"):
            decode(peaky_model, codes(3), strategy=strategy, beam=3, max_len=6)
    finally:
        handle.remove()
    assert widths and set(widths) == {1}


def test_beam_one_and_topk_one_are_greedy(peaky_model):
    z = codes(8, seed=1)
    greedy = [h.tolist() for h in decode(peaky_model, z, max_len=9)]
    assert [h.tolist() for h in decode(peaky_model, z, strategy="beam", beam=1,
                                       max_len=9)] == greedy
    torch.manual_seed(0)
    assert [h.tolist() for h in decode(peaky_model, z, strategy="sample", sampling_topk=1,
                                       max_len=9)] == greedy
    assert [h.tolist() for h in decode(peaky_model, z, strategy="sample", sampling_topp=1e-6,
                                       max_len=9)] == greedy


@pytest.mark.parametrize("lenpen", [0.0, 1.0])
def test_wide_beam_finds_the_exact_best_sentence(make_model, lenpen):
    """With a beam wider than the number of candidates, beam search is exhaustive:
    it must return the best of all sentences of 1 to max_len words, scored by teacher
    forcing; greedy decoding does worse on some codes."""
    from fairseq.data import Dictionary

    d = Dictionary()
    for w in ("a", "b"):
        d.add_symbol(w)
    d.finalize(padding_factor=1)
    model = make_model(seed=5, dictionary=d, init_scale=1.0).eval()
    max_len = 3
    words = [d.unk(), d.index("a"), d.index("b")]
    sentences = [torch.tensor(s, dtype=torch.long) for n in range(1, max_len + 1)
                 for s in itertools.product(words, repeat=n)]
    beam = (len(words) + 1) * len(words) ** max_len  # every candidate of a step
    z = codes(8, seed=2)
    found = decode(model, z, strategy="beam", beam=beam, lenpen=lenpen, max_len=max_len)
    greedy = decode(model, z, max_len=max_len)
    worse = 0
    for zi, hypo, g in zip(z, found, greedy):
        scores = [sentence_score(model, s, zi, lenpen) for s in sentences]
        best = max(scores)
        assert sentence_score(model, hypo, zi, lenpen) == pytest.approx(best, abs=1e-5)
        worse += sentence_score(model, g, zi, lenpen) < best - 1e-4
    assert worse > 0, "greedy found the optimum everywhere: the test cannot tell"


def test_batching_does_not_change_results(peaky_model):
    z = codes(7, seed=4)
    for kw in (dict(strategy="greedy"), dict(strategy="beam", beam=4)):
        together = decode(peaky_model, z, max_len=8, batch_size=64, **kw)
        alone = decode(peaky_model, z, max_len=8, batch_size=1, **kw)
        in_threes = decode(peaky_model, z, max_len=8, batch_size=3, **kw)
        assert [h.tolist() for h in together] == [h.tolist() for h in alone], kw
        assert [h.tolist() for h in together] == [h.tolist() for h in in_threes], kw


def first_word_counts(model, z, n, **kw):
    """How often each token is the first word of ``n`` samples from the code ``z``."""
    torch.manual_seed(0)
    hypos = decode(model, z.expand(n, -1), strategy="sample", max_len=1, batch_size=n, **kw)
    first = torch.stack([h[0] for h in hypos])
    return torch.bincount(first, minlength=len(model.decoder.dictionary)).float()


def test_topk_and_nucleus_sample_from_the_truncated_distribution(peaky_model):
    """First words of many samples at temperature T: only the top-k (or the smallest
    set of most likely words with probability >= p) occur, at their renormalized
    frequencies under softmax(logits / T) without BOS and <pad>."""
    d = peaky_model.decoder.dictionary
    z = codes(1, seed=6)
    T = 0.5
    probs = next_lprobs(peaky_model, torch.tensor([d.bos()]), z[0], temperature=T).exp()
    probs /= probs.sum()
    sorted_probs, order = probs.sort(descending=True)
    n = 4000

    counts = first_word_counts(peaky_model, z, n, sampling_topk=3, temperature=T)
    top3 = torch.zeros_like(probs).index_fill(0, order[:3], 1.0) * probs
    assert set(counts.nonzero().flatten().tolist()) == set(order[:3].tolist())
    torch.testing.assert_close(counts / n, top3 / top3.sum(), rtol=0, atol=0.03)

    p = 0.6
    size = int((sorted_probs.cumsum(0) < p).sum()) + 1  # smallest set reaching p
    assert 2 <= size <= 6, f"choose another code: the nucleus has {size} words"
    nucleus = torch.zeros_like(probs).index_fill(0, order[:size], 1.0) * probs
    counts = first_word_counts(peaky_model, z, n, sampling_topp=p, temperature=T)
    assert set(counts.nonzero().flatten().tolist()) == set(order[:size].tolist())
    torch.testing.assert_close(counts / n, nucleus / nucleus.sum(), rtol=0, atol=0.03)

    counts = first_word_counts(peaky_model, z, n, temperature=T)  # untruncated
    assert counts.nonzero().numel() > size
    torch.testing.assert_close(counts / n, probs, rtol=0, atol=0.03)


def test_max_len_specials_and_seed(make_model):
    """An untrained model rarely ends a sentence: outputs stop at max_len words, have
    at least one word, never BOS, <pad> or EOS, and sampling repeats under the same
    seed."""
    d = make_model().decoder.dictionary
    model = make_model(seed=1).eval()
    z = codes(10, seed=7)
    for kw in (dict(strategy="greedy"), dict(strategy="beam", beam=3),
               dict(strategy="sample", temperature=2.0)):
        hypos = decode(model, z, max_len=4, **kw)
        assert len(hypos) == 10
        assert max(h.numel() for h in hypos) == 4, kw
        for h in hypos:
            assert h.dtype == torch.long and h.dim() == 1 and h.numel() >= 1
            assert not set(h.tolist()) & {d.bos(), d.pad(), d.eos()}, kw
    torch.manual_seed(11)
    first = decode(model, z, strategy="sample", max_len=12)
    torch.manual_seed(11)
    again = decode(model, z, strategy="sample", max_len=12)
    other = decode(model, z, strategy="sample", max_len=12)
    assert [h.tolist() for h in first] == [h.tolist() for h in again]
    assert [h.tolist() for h in first] != [h.tolist() for h in other]


def test_lstm_lm_decodes_empty_codes(make_model):
    model = make_model(latent_dim=0).eval()
    hypos = decode(model, torch.zeros(3, 0), strategy="beam", beam=2, max_len=5)
    assert len(hypos) == 3 and all(h.numel() <= 5 for h in hypos)


@pytest.mark.parametrize("kw, match", [
    (dict(strategy="topk"), "strategy"),
    (dict(strategy="beam", beam=0), "beam"),
    (dict(max_len=0), "max_len"),
    (dict(batch_size=0), "batch_size"),
    (dict(sampling_topk=-1), "sampling_topk"),
    (dict(sampling_topp=1.5), "sampling_topp"),
    (dict(temperature=0.0), "temperature"),
])
def test_decode_rejects_bad_arguments(make_model, kw, match):
    with pytest.raises(ValueError, match=match):
        decode(make_model(), codes(2), **kw)


def test_decode_rejects_codes_of_another_size(make_model):
    with pytest.raises(ValueError, match=r"z must be N x 4"):
        decode(make_model(), codes(2, dim=3))


# ---- the hub's generation methods on a trained model ---------------------------------


@pytest.fixture(scope="module")
def vae(trained_vae):
    return SeqVAE.from_pretrained(str(trained_vae.save_dir), str(trained_vae.data),
                                  device="cpu")


def test_hub_generation(vae, trained_vae):
    sentences = trained_vae.test_lines[:3]
    torch.manual_seed(0)
    samples = vae.sample(5, strategy="sample", sampling_topk=5, max_len=15)
    assert len(samples) == 5 and all(0 < len(s.split()) <= 15 for s in samples)
    vocab = set(vae.dictionary.symbols)
    assert all(set(s.split()) <= vocab for s in samples)

    recon = vae.reconstruct(sentences, max_len=20)
    mean = vae.latent_codes(sentences)
    assert recon == vae.decode(mean, max_len=20)
    assert vae.reconstruct(sentences, strategy="beam", beam=3) == vae.decode(
        mean, strategy="beam", beam=3)
    torch.manual_seed(1)
    sampled = vae.latent_codes(sentences, use_mean=False)
    assert sampled.shape == mean.shape and not torch.allclose(sampled, mean)

    path = vae.interpolate(sentences[0], sentences[1], steps=4, max_len=20)
    assert len(path) == 4
    assert [path[0], path[-1]] == recon[:2]
    line = vae.interpolation_codes([(sentences[0], sentences[1])], steps=4)[0]  # S x Z
    torch.testing.assert_close(line[0], mean[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(line[-1], mean[1], rtol=0, atol=1e-5)
    torch.testing.assert_close(line[1] - line[0], line[2] - line[1], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="steps"):
        vae.interpolate(sentences[0], sentences[1], steps=1)


def test_hub_lstm_lm_samples_but_cannot_reconstruct(make_model, dictionary):
    from conftest import FakeTask

    lm = SeqVAE(make_model(latent_dim=0), FakeTask(dictionary))
    assert len(lm.sample(2, max_len=5)) == 2
    for call in (lambda: lm.reconstruct(["w1 w2"]), lambda: lm.interpolate("w1", "w2")):
        with pytest.raises(ValueError, match="latent-dim 0"):
            call()


# ---- seqvae-generate -----------------------------------------------------------------


def generate_cmd(trained_vae, mode, *extra):
    return [cu.console_script("seqvae-generate"), mode, "--path", trained_vae.save_dir,
            "--cpu", *extra]


def json_lines(text):
    return [json.loads(line) for line in text.splitlines()]


def test_cli_sample(trained_vae, vae, tmp_path):
    """--json codes of the latent dim; decoding them again gives the sentences;
    the same --seed gives the same codes whatever the strategy and batch size, and
    --sampling other sentences than greedy; --output; python -m works too."""
    flags = ["-n", 7, "--json", "--seed", 5]
    cmd = [sys.executable, "-m", "fairseq_seqvae.cli.generate"] + generate_cmd(
        trained_vae, "sample", *flags, "--batch-size", 3, "--max-len", 12)[1:]
    proc = cu.run(cmd, tmp_path)
    assert "RuntimeWarning" not in proc.stderr
    records = json_lines(proc.stdout)
    assert [r["id"] for r in records] == list(range(7))
    z = torch.tensor([r["z"] for r in records])
    assert z.shape == (7, LATENT_DIM)
    assert [r["sentence"] for r in records] == vae.decode(z, max_len=12)

    out = tmp_path / "samples.jsonl"
    proc = cu.run(generate_cmd(trained_vae, "sample", *flags, "--sampling",
                               "--sampling-topp", 0.9, "--output", out), tmp_path)
    assert proc.stdout == ""
    sampled = json_lines(out.read_text())
    assert len(sampled) == 7 and all(r["sentence"] for r in sampled)
    assert [r["z"] for r in sampled] == [r["z"] for r in records], "same --seed, same codes"
    assert [r["sentence"] for r in sampled] != [r["sentence"] for r in records]


def test_cli_reconstruct_and_interpolate(trained_vae, vae, tmp_path):
    """reconstruct from stdin (JSON codes = posterior means, one output per line, OOV
    words counted, an over-long line encoded in full but its output cut at
    --max-len) and from a file; interpolate: its ends are the reconstructions."""
    lines = trained_vae.test_lines[:4]
    long_line = " ".join(["w1", "w2", "w3"] * 100)
    oov_line = "w1 zzz-unknown w2 qqq"
    given = lines + [oov_line, long_line]
    proc = cu.run(generate_cmd(trained_vae, "reconstruct", "--json", "--max-len", 20,
                               "--input", "-"), tmp_path,
                  stdin="".join(s + "\n" for s in given))
    records = json_lines(proc.stdout)
    assert [r["input"] for r in records] == given
    assert [r["sentence"] for r in records] == vae.reconstruct(given, max_len=20)
    torch.testing.assert_close(torch.tensor([r["z"] for r in records]),
                               vae.latent_codes(given).cpu(), rtol=0, atol=1e-6)
    assert len(records[-1]["sentence"].split()) <= 20
    assert "2 out-of-vocabulary word(s) mapped to <unk>" in proc.stderr
    assert "1 input sentence(s) have more than --max-len 20 words" in proc.stderr

    # from a file; --sample-posterior: codes off the mean, decoded by beam search
    proc = cu.run(generate_cmd(trained_vae, "reconstruct", "--beam", 3, "--sample-posterior",
                               "--json", "--input",
                               cu.write_lines(tmp_path / "in.txt", lines)), tmp_path)
    records = json_lines(proc.stdout)
    z = torch.tensor([r["z"] for r in records])
    assert not torch.allclose(z, vae.latent_codes(lines).cpu(), atol=1e-3)
    assert [r["sentence"] for r in records] == vae.decode(z, strategy="beam", beam=3)
    assert "out-of-vocabulary" not in proc.stderr

    pairs = cu.write_lines(tmp_path / "pairs.tsv", [f"{lines[0]}\t{lines[1]}",
                                                     f"{lines[2]}\t{lines[3]}"])
    proc = cu.run(generate_cmd(trained_vae, "interpolate", "--steps", 4, "--json",
                               "--max-len", 20, "--input", pairs), tmp_path)
    records = json_lines(proc.stdout)
    assert [(r["id"], r["step"]) for r in records] == [(p, s) for p in (0, 1)
                                                       for s in range(4)]
    assert [r["t"] for r in records[:4]] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    ends = [r["sentence"] for r in records if r["step"] in (0, 3)]
    assert ends == vae.reconstruct(lines, max_len=20)
    assert all(len(r["z"]) == LATENT_DIM for r in records)


@pytest.fixture(scope="module")
def moses_vae(tmp_path_factory):
    """A tiny VAE trained one epoch on Moses-tokenized text (commas, full stops)."""
    root = tmp_path_factory.mktemp("moses_vae")
    text = []
    for line in cu.synthetic_sentences(300, seed=21, vocab_size=20):
        words = line.split()
        text.append(" ".join(words[:2] + [","] + words[2:] + ["."]))
    cu.write_lines(root / "train.txt", text)
    data = cu.preprocess(root / "bin", root, trainpref=root / "train.txt",
                         validpref=root / "train.txt")
    cu.train(data, root / "ck", "--max-epoch", 1, "--no-epoch-checkpoints", cwd=root)
    return data, root / "ck"


def test_cli_moses_tokenizer(moses_vae, tmp_path):
    """--tokenizer moses: 'w1 w2, w3.' is read as 'w1 w2 , w3 .' (no unknown word)
    and the output is detokenized (no space before ',' and '.')."""
    from sacremoses import MosesDetokenizer

    data, save_dir = moses_vae
    given = ["w1 w2, w3 w4.", "w5 w1, w2.", "w0 w3, w3 w1 w7."]
    proc = cu.run([cu.console_script("seqvae-generate"), "reconstruct", "--path", save_dir,
                   "--cpu", "--tokenizer", "moses", "--json"], tmp_path,
                  stdin="".join(s + "\n" for s in given))
    assert "out-of-vocabulary" not in proc.stderr
    records = json_lines(proc.stdout)
    plain = SeqVAE.from_pretrained(str(save_dir), str(data), device="cpu")
    tokenized = plain.decode(torch.tensor([r["z"] for r in records]))
    detok = MosesDetokenizer("en")
    assert [r["sentence"] for r in records] == [detok.detokenize(t.split()) for t in tokenized]
    assert any(" ." in t or " ," in t for t in tokenized), "no punctuation generated"
    assert not any(" ." in r["sentence"] or " ," in r["sentence"] for r in records)
    plain.tokenize(given)
    assert plain.num_oov > 0, "without moses the attached punctuation is unknown"


# ---- errors ---------------------------------------------------------------------------


def run_main(argv, capsys, monkeypatch, stdin=""):
    """``seqvae-generate`` in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        code = generate.main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, match", [
    (["sample", "--beam", 0], "argument --beam: must be at least 1"),
    (["sample", "-n", 0], "argument -n/--num-samples: must be at least 1"),
    (["interpolate", "--steps", 1], "argument --steps: must be at least 2"),
    (["sample", "--sampling-topk", -2], "argument --sampling-topk: must be 0"),
    (["sample", "--sampling-topp", 2], "argument --sampling-topp: must be between 0 and 1"),
    (["sample", "--temperature", 0], "argument --temperature: must be positive"),
    (["sample", "--sampling-topk", 5], "--sampling-topk needs --sampling"),
    (["sample", "--sampling", "--beam", 2], "use it without --beam"),
    (["sample"], "the following arguments are required: --path"),
])
def test_cli_rejects_bad_flags(argv, match, capsys, monkeypatch):
    if argv != ["sample"]:
        argv = argv + ["--path", "unused"]
    code, out, err = run_main(argv, capsys, monkeypatch)
    assert code == 2 and out == ""
    assert match in err


def test_cli_input_errors(trained_vae, moses_vae, tmp_path, capsys, monkeypatch):
    """Bad input exits 1 with one line naming the problem (no traceback)."""
    path = ["--path", trained_vae.save_dir, "--cpu"]
    good = trained_vae.test_lines[0]
    (tmp_path / "sub").mkdir()
    cases = [
        (["reconstruct", *path], "", "no sentences in stdin"),
        (["reconstruct", *path], "\n  \n", "no sentences in stdin"),
        (["reconstruct", *path], f"{good}\n\n{good}\n", "line 2 of stdin is empty"),
        (["reconstruct", *path, "--input", tmp_path / "nope.txt"], "",
         f"no such file: {tmp_path / 'nope.txt'}"),
        (["reconstruct", *path, "--input", tmp_path / "sub"], "", "is a directory"),
        (["interpolate", *path], f"{good}\t{good}\n{good}\n",
         "line 2 of stdin must hold two sentences separated by one tab"),
        (["interpolate", *path], f"{good}\t\n", "line 1 of stdin must hold two"),
        (["sample", "--path", tmp_path / "missing"], "", "checkpoint not found"),
        (["sample", *path, "--output", tmp_path / "no-dir" / "out.txt"], "",
         "--output: cannot write"),
        # another model's dict.txt
        (["sample", *path, "--data", moses_vae[0]], "", "dictionary mismatch"),
    ]
    for argv, stdin, match in cases:
        code, out, err = run_main(argv, capsys, monkeypatch, stdin)
        assert code == 1, (argv, err)
        assert out == ""
        assert match in err and "Traceback" not in err, (argv, err)
        assert err.startswith("seqvae-generate: error: ")

    bad = tmp_path / "latin1.txt"
    bad.write_bytes("ok\ncaf\xe9\n".encode("latin-1"))
    code, _, err = run_main(["reconstruct", *path, "--input", bad], capsys, monkeypatch)
    assert code == 1 and f"{bad} is not UTF-8 text: line 2, byte 4 (0xe9)" in err
