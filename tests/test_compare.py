"""seqvae-compare end to end (the real fairseq-preprocess and fairseq-train as
subprocesses), the demo corpus it trains on by default, and, on a slice of the real
PTB corpus, the mechanism of Long, Cao & Cheung (2019): after the same short training
the max-pooled VAE keeps an informative posterior (KL, active units) and the last-state
VAE does not.
"""

import json
import math
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cli_utils, package or not
import cli_utils as cu  # noqa: E402

from fairseq_seqvae.cli import compare  # noqa: E402
from fairseq_seqvae.fairseq_logs import parse_log  # noqa: E402
from fairseq_seqvae.cli.demo_corpus import (  # noqa: E402
    SENTIMENT,
    TOPICS,
    generate_sentences,
    write_demo_corpus,
)

COMPARE = [sys.executable, "-m", "fairseq_seqvae.cli.compare"]
# the repository first on the path: the checkout under test, installed or not
ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(cu.REPO), os.environ.get("PYTHONPATH")]))}
METRICS = ["rec", "kl", "elbo", "mi", "au", "ppl"]
TINY_UPDATES = 12
TINY = ["--arch", "seqvae_lstm_tiny", "--max-update", TINY_UPDATES, "--batch-size", 16,
        "--validate-interval", TINY_UPDATES // 2]


def run_compare(*args, cwd, expect_ok=True, timeout=600, **kwargs):
    run = cu.run if expect_ok else cu.run_fails
    return run([*COMPARE, *args], cwd, env=ENV, timeout=timeout, **kwargs)


# ---------------------------------------------------------------------------------------
# demo corpus


def test_demo_corpus_is_deterministic_and_sentence_shaped(tmp_path):
    a = write_demo_corpus(tmp_path / "a", n_train=400, n_valid=50, n_test=50, seed=3)
    b = write_demo_corpus(tmp_path / "b", n_train=400, n_valid=50, n_test=50, seed=3)
    c = write_demo_corpus(tmp_path / "c", n_train=400, n_valid=50, n_test=50, seed=4)
    for split in ("train", "valid", "test"):
        assert Path(a[split]).read_bytes() == Path(b[split]).read_bytes(), split
    assert Path(a["train"]).read_bytes() != Path(c["train"]).read_bytes()

    counts = {split: Path(a[split]).read_text(encoding="utf-8").split("\n") for split in a}
    for split, n in (("train", 400), ("valid", 50), ("test", 50)):
        assert counts[split][-1] == "" and len(counts[split]) == n + 1, split
    # splits are disjoint draws of one stream
    assert set(counts["train"][:-1]).isdisjoint(counts["valid"][:-1])

    sentences = generate_sentences(3000, seed=0)
    lengths = [len(s.split()) for s in sentences]
    assert min(lengths) >= 5 and max(lengths) <= 30
    assert 12 <= sum(lengths) / len(lengths) <= 25
    assert all(s == s.lower() and s.split() == s.split(" ") for s in sentences)
    vocab = {w for s in sentences for w in s.split()}
    assert 300 <= len(vocab) <= 2000, len(vocab)


def test_demo_corpus_has_one_topic_per_sentence():
    """The latent topic shapes the content words of the whole sentence: the nouns
    that belong to a single topic never mix topics within a sentence."""
    owner = {}
    for topic, lex in TOPICS.items():
        words = [*lex["nouns"], *lex["adjs"], *(w for v in lex["verbs"] for w in v),
                 *(w for place in lex["places"] for w in place.split())]
        for word in words:
            owner.setdefault(word, set()).add(topic)
    for lex in SENTIMENT.values():  # words that any sentence may use
        for word in (w for phrases in lex.values() for p in phrases for w in p.split()):
            owner.setdefault(word, set()).add("sentiment")
    exclusive = {noun: topics.pop() for noun, topics in owner.items()
                 if len(topics) == 1 and any(noun in lex["nouns"] for lex in TOPICS.values())}
    seen = 0
    for sentence in generate_sentences(2000, seed=1):
        topics = {exclusive[w] for w in sentence.split() if w in exclusive}
        assert len(topics) <= 1, sentence
        seen += len(topics)
    assert seen > 1800  # nearly every sentence names its topic


# ---------------------------------------------------------------------------------------
# pieces of the CLI, without training


def test_split_text_counts_empty_lines_and_is_deterministic(tmp_path):
    lines = [f"sentence number {i} ." for i in range(40)]
    text = cu.write_lines(tmp_path / "in.txt", cu.with_empty_lines(lines, every=8) + ["   "])
    info = compare.split_text(str(text), str(tmp_path / "s1"), valid_fraction=0.1)
    again = compare.split_text(str(text), str(tmp_path / "s2"), valid_fraction=0.1)
    assert info["empty_dropped"] == 40 // 8 + 1
    assert (info["train"], info["valid"]) == (36, 4)
    assert info == {**again, "source": info["source"]}
    train = (tmp_path / "s1" / "train.txt").read_text().splitlines()
    valid = (tmp_path / "s1" / "valid.txt").read_text().splitlines()
    assert train == (tmp_path / "s2" / "train.txt").read_text().splitlines()
    assert sorted(train + valid) == sorted(lines) and len(valid) == 4
    # training sentences keep the file's order
    assert train == [s for s in lines if s in set(train)]


def test_text_errors_name_the_line_and_long_lines_are_reported(tmp_path, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("a b c\nd e\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(compare.CompareError,
                       match=r"latin1.txt is not UTF-8 text: line 3, byte 4 \(0xe9\)"):
        compare.split_text(str(bad), str(tmp_path / "split"), valid_fraction=0.5)
    text = cu.write_lines(tmp_path / "long.txt",
                          ["a short one", " ".join(["w"] * 2000), "", "another short one"])
    kept, empty = compare.read_sentences(str(text))
    assert (len(kept), empty) == (3, 1)
    err = capsys.readouterr().err
    assert "1 sentence(s) have more than 200 words (non-empty lines 2; the longest has 2000)" in err
    compare.read_sentences(str(cu.write_lines(tmp_path / "fine.txt", ["a b", "c d"])))
    assert "warning" not in capsys.readouterr().err


def test_train_command_budget_and_passthrough():
    args = compare.parse_args(["--minutes", "1.5", "--poolings", "mean,last", "--extra=--lr 0.01",
                               "--", "--latent-dim", "8"])
    compare.set_budget(args, train_sentences=8000)
    assert args.pooling_list == ["mean", "last"] and args.max_update == 0
    cmd = compare.train_command(args, args.extra_flags, "BIN", "mean", "DIR")
    assert cmd[cmd.index("--stop-time-hours") + 1] == repr(1.5 / 60)
    assert cmd[cmd.index("--pooling") + 1] == "mean"
    # user flags come last, so they override the defaults
    assert cmd[-4:] == ["--lr", "0.01", "--latent-dim", "8"]
    # the recipe of docs/COLLAPSE.md: Adam for the encoder and SGD for the decoder, word
    # dropout, warm-up over half (of the 8-epoch budget: 250 batches of 32 per epoch here),
    # free bits
    assert "--sentence-avg" in cmd
    for flag, value in (("--optimizer", "encoder_decoder"), ("--encoder-optimizer", "adam"),
                        ("--encoder-lr", "0.001"), ("--decoder-optimizer", "sgd"),
                        ("--lr", "1.0"), ("--clip-norm", "5.0"), ("--word-dropout", "0.5"),
                        ("--kl-warmup-updates", "1000"), ("--free-bits", "0.1"),
                        ("--max-update", "0")):
        assert cmd[cmd.index(flag) + 1] == value, flag


def budget(argv, train_sentences):
    args = compare.parse_args(argv)
    compare.set_budget(args, train_sentences)
    return args.max_update, args.kl_warmup_updates, args.validate_interval


def test_the_budget_is_epochs_and_the_warm_up_its_first_half(capsys):
    # the main job: 8 passes over the training sentences, batches of 32
    assert budget([], 8000) == (2000, 1000, 250)  # yahoo-mini
    assert budget([], 42068) == (10520, 5260, 1000)  # PTB: 1,315 batches per pass
    assert budget(["--epochs", "2", "--batch-size", "16"], 100) == (14, 7, 2)
    assert budget(["--epochs", "0.5"], 10) == (1, 1, 1)  # at least one update
    assert budget(["--max-update", "12"], 42068) == (12, 6, 2)
    assert budget(["--minutes", "5"], 8000) == (0, 1000, 500)
    assert budget(["--minutes", "5", "--max-update", "300"], 8000) == (300, 150, 50)
    # where the budget came from: seqvae-compare prints it
    for argv, source in (([], "--epochs 8 over 42068 training sentences"),
                         (["--max-update", "12"], "--max-update"), (["--minutes", "5"], "--minutes")):
        assert compare.set_budget(compare.parse_args(argv), 42068) == source
    for bad, message in ((["--epochs", "0"], "--epochs must be positive"),
                         (["--max-update", "0"], "--max-update must be positive")):
        with pytest.raises(SystemExit):
            compare.parse_args(bad)
        assert message in capsys.readouterr().err


def test_default_validate_interval_is_a_round_number():
    for max_update in (6, 7, 99, 100, 1000, 1313, 3000, 13000, 40000):
        interval = compare.round_interval(max_update)
        assert 6 <= max_update // interval <= 12, (max_update, interval)
        digits = str(interval).rstrip("0")
        assert digits in ("1", "2", "25", "5"), (max_update, interval)


# ---------------------------------------------------------------------------------------
# the CLI end to end (tiny model, a few updates)


def check_model(result, pooling, latent_dim):
    assert result["pooling"] == pooling
    for key in METRICS + ["wall_s"]:
        assert isinstance(result[key], float) and math.isfinite(result[key]), (key, result)
    assert result["updates"] == TINY_UPDATES
    assert result["elbo"] == pytest.approx(result["rec"] + result["kl"], abs=0.01)
    assert result["kl"] >= 0 and 0 <= result["au"] <= latent_dim
    assert result["au"] == int(result["au"])
    assert Path(result["log"]).is_file() and Path(result["checkpoint"]).is_file()
    state = torch.load(result["checkpoint"], map_location="cpu", weights_only=False)
    model_cfg = state["cfg"]["model"]
    assert (model_cfg["pooling"], model_cfg["latent_dim"]) == (pooling, latent_dim)
    valid = cu.json_log(Path(result["log"]).read_text(encoding="utf-8"), "valid")
    # every --validate-interval updates and at the end, not at epoch ends (odd counts)
    updates = [int(r["valid_num_updates"]) for r in valid]
    assert updates == [TINY_UPDATES // 2, TINY_UPDATES], updates
    assert valid[-1]["valid_kl"] == pytest.approx(result["kl"])


def progress_order(stderr):
    """The models' "training" and "done" progress lines in the order printed, as
    [(event, pooling)]."""
    return [(event, pooling) for pooling, event in
            re.findall(r"\[\d/\d (\w+)\] (training|done)", stderr)]


def test_compare_text_json_three_poolers(tmp_path):
    """--text with empty lines, --json, --no-plots, every pooler, and flags after '--' reaching
    fairseq-train (--latent-dim 3, read back from the checkpoints)."""
    sentences = generate_sentences(120, seed=5)
    text = cu.write_lines(tmp_path / "my text.txt",
                          ["", *cu.with_empty_lines(sentences, every=20), " \t "])
    proc = run_compare("--text", text, "--poolings", "last,max,mean", "--json", "--no-plots",
                       "--jobs", 2, "--work-dir", tmp_path / "out", *TINY, "--",
                       "--latent-dim", "3", cwd=tmp_path)
    summary = json.loads(proc.stdout)
    assert summary["plots"] == {} and not (tmp_path / "out" / "curves.png").exists()
    data = summary["data"]
    assert data["kind"] == "text" and data["empty_dropped"] == 1 + 120 // 20 + 1
    assert (data["train"], data["valid"]) == (114, 6)  # 5 % of 120
    assert data["lines"] == 120 + data["empty_dropped"]
    split = [(tmp_path / "out" / "text" / f"{s}.txt").read_text().splitlines()
             for s in ("train", "valid")]
    assert sorted(split[0] + split[1]) == sorted(sentences)
    assert summary["settings"]["poolings"] == ["last", "max", "mean"]
    assert [r["pooling"] for r in summary["models"]] == ["last", "max", "mean"]
    for result, pooling in zip(summary["models"], ["last", "max", "mean"]):
        check_model(result, pooling, latent_dim=3)
    # --jobs 2: the first two models train side by side, the third after one of them
    assert summary["settings"]["jobs"] == 2
    # (the order of the progress lines, not log timestamps: those have 1 s resolution)
    events = progress_order(proc.stderr)
    assert sorted(events[:2]) == [("training", "last"), ("training", "max")], events
    assert events[2][0] == "done" and events[3] == ("training", "mean"), events
    # progress: one line per model per validation, on stderr
    for i, pooling in enumerate(["last", "max", "mean"], 1):
        for update in (TINY_UPDATES // 2, TINY_UPDATES):
            assert re.search(rf"\[{i}/3 {pooling}\] update {update}: rec ", proc.stderr), proc.stderr
    assert "dropped 8 empty" in proc.stderr


def test_compare_budget_in_passes_reaches_fairseq_train(tmp_path):
    """The default budget is --epochs passes over the training sentences, the KL warm-up
    its first half: 2 passes over 114 sentences in batches of 16 are 2 x 8 updates."""
    text = cu.write_lines(tmp_path / "my.txt", generate_sentences(120, seed=5))
    proc = run_compare("--text", text, "--poolings", "max", "--json", "--no-plots",
                       "--arch", "seqvae_lstm_tiny", "--batch-size", 16, "--epochs", 2,
                       "--work-dir", tmp_path / "out", cwd=tmp_path)
    summary = json.loads(proc.stdout)
    assert "budget: 16 updates of 16 sentences per model (--epochs 2 over 114 training " \
        "sentences), the KL weight rising to 1 over the first 8 updates" in proc.stderr
    settings = summary["settings"]
    assert (settings["max_update"], settings["kl_warmup_updates"]) == (16, 8)
    flags = settings["train_flags"]
    assert flags[flags.index("--kl-warmup-updates") + 1] == "8"
    (model,) = summary["models"]
    assert model["updates"] == 16
    # the KL weight of each logged update: rising over updates 1-8, then 1
    weights = dict(parse_log(Path(model["log"]).read_text())["train_inner"]["kl_weight"])
    assert [w for u, w in sorted(weights.items()) if u <= 8] == [i / 8 for i in range(8)]
    assert [w for u, w in weights.items() if u > 8] == [1.0] * 8


def test_compare_demo_table(tmp_path):
    """The default input (the demo corpus) and the printed side-by-side table."""
    proc = run_compare("--demo-sentences", 400, "--work-dir", "out", *TINY, cwd=tmp_path)
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("pooling"))
    assert lines[header].split() == ["pooling", "rec", "KL", "-ELBO", "MI", "AU", "PPL<=",
                                     "updates", "wall", "s"]
    rows = {line.split()[0]: line.split() for line in lines[header + 2:header + 4]}
    assert set(rows) == {"last", "max"}
    for row in rows.values():
        rec, kl, elbo = map(float, row[1:4])
        assert elbo == pytest.approx(rec + kl, abs=0.02)
        assert int(row[7]) == TINY_UPDATES
    out = tmp_path / "out"
    for pooling in ("last", "max"):
        assert f"{pooling}: checkpoint {out / pooling / 'checkpoint_last.pt'}" in proc.stdout
        assert (out / pooling / "checkpoint_last.pt").is_file()
    assert len((out / "text" / "train.txt").read_text().splitlines()) == 400
    assert len((out / "text" / "valid.txt").read_text().splitlines()) == 20
    # 20 validation sentences: warned about before training, and next to the verdict
    assert "warning: only 20 validation sentences" in proc.stderr
    verdict = next(line for line in lines if "posterior collapse" in line)
    assert "(from only 20 validation sentences: too few for the verdict" in verdict
    assert (out / "bin" / "dict.txt").is_file()
    # stderr holds progress lines and warnings only: no library INFO logging from drawing
    # the figures (fairseq's when the models load, matplotlib's font cache)
    noise = [line for line in proc.stderr.splitlines()
             if not line.startswith("[seqvae-compare]") and " | WARNING | " not in line]
    assert not noise, noise
    for figure in ("curves", "latent"):  # the quickstart's figures, named in the report
        assert f"figure ({figure}): {out / figure}.png" in proc.stdout
        assert Image.open(out / f"{figure}.png").size[0] > 600


@pytest.mark.parametrize("case", ["missing", "empty", "one-line", "no-valid", "pooler"])
def test_compare_clear_errors(tmp_path, case):
    if case == "missing":
        args, message = ["--text", tmp_path / "nope.txt"], f"no such file: {tmp_path / 'nope.txt'}"
    elif case == "empty":
        cu.write_lines(tmp_path / "empty.txt", ["", "  ", ""])
        args, message = ["--text", tmp_path / "empty.txt"], "needs at least 2 non-empty lines"
    elif case == "one-line":
        cu.write_lines(tmp_path / "one.txt", ["just one sentence", ""])
        args, message = ["--text", tmp_path / "one.txt"], "it has 1 (and 1 empty)"
    elif case == "no-valid":
        cu.write_lines(tmp_path / "train.txt", ["a b c", "d e f"])
        args, message = ["--data-dir", tmp_path], "no valid.txt"
    else:
        args, message = ["--poolings", "last,attention"], "choose from last,max,mean"
    proc = run_compare(*args, "--work-dir", tmp_path / "out", cwd=tmp_path, expect_ok=False)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "last").exists()  # nothing was trained


def test_console_script(tmp_path):
    setup_py = (cu.REPO / "setup.py").read_text(encoding="utf-8")
    assert '"seqvae-compare = fairseq_seqvae.cli.compare:main"' in setup_py
    script = cu.BIN_DIR / "seqvae-compare"
    if not script.is_file():
        pytest.skip(f"{script} not installed yet: run scripts/setup.sh (it reinstalls the "
                    "plugin when setup.py changes)")
    proc = cu.run([script, "--help"], tmp_path)
    assert proc.stdout.startswith("usage: seqvae-compare")
    assert "--poolings" in proc.stdout and "--text FILE" in proc.stdout


# ---------------------------------------------------------------------------------------
# the mechanism on real text: a slice of PTB

PTB_TRAIN_LINES, PTB_VALID_LINES, PTB_VOCAB = 10000, 1000, 3000
PTB_SEED = 1
# Seeds 1-5 of exactly this setting (2026-11-21, 2-core CPU, about 40 s per model):
#   last: KL 0.002-0.004, AU 0 in all five; max: KL 0.43-0.82, AU 19-24.
# The margins below hold for the worst seed with room to spare (AU 19 >= 0 + 10;
# KL 0.43 > 20 x 0.004 + 0.2) and fail if pooling stops mattering.
AU_MARGIN, KL_RATIO, KL_MARGIN = 10, 20, 0.2
PTB_FLAGS = [
    "--max-update", 600, "--batch-size", 32, "--validate-interval", 300,
    "--vocab-size", PTB_VOCAB, "--no-default-flags", "--",
    "--encoder-embed-dim", 128, "--encoder-hidden-dim", 128,
    "--decoder-embed-dim", 128, "--decoder-hidden-dim", 128,
    "--optimizer", "adam", "--lr", 0.002,
    "--kl-schedule", "linear", "--kl-start", 0.0, "--kl-max", 1.0, "--kl-warmup-updates", 2000,
]


@pytest.mark.slow
def test_ptb_max_pooling_keeps_posterior_that_last_state_loses(tmp_path):
    """Long et al. 2019 on real text: the same data, seed, model, KL warm-up and 600
    updates; only --pooling differs. With the He et al. initialization of the PTB
    architecture, the last encoder state barely varies across sentences, so the
    last-state VAE's posterior stays at the prior (KL ~ 0, no active unit), while the
    max-pooled encoder's posterior carries information in many latent dimensions."""
    ptb = cu.ptb_dir()
    data = tmp_path / "ptb-slice"
    data.mkdir()
    for split, n in (("train", PTB_TRAIN_LINES), ("valid", PTB_VALID_LINES)):
        with open(ptb / f"{split}.txt", encoding="utf-8") as f:
            cu.write_lines(data / f"{split}.txt", [next(f).strip() for _ in range(n)])
    proc = run_compare("--data-dir", data, "--json", "--seed", PTB_SEED,
                       "--work-dir", tmp_path / "out", *PTB_FLAGS, cwd=tmp_path)
    models = {r["pooling"]: r for r in json.loads(proc.stdout)["models"]}
    last, pooled = models["last"], models["max"]
    shown = {p: {k: r[k] for k in ("rec", "kl", "mi", "au")} for p, r in models.items()}
    assert pooled["au"] >= last["au"] + AU_MARGIN, shown
    assert pooled["kl"] > KL_RATIO * last["kl"] + KL_MARGIN, shown
    # the same budget, and a comparable fit: the pooled encoder is not buying KL
    # with a much worse reconstruction
    assert last["updates"] == pooled["updates"] == 600
    assert pooled["elbo"] < last["elbo"] + 2.0, shown
