"""Integration tests: the real fairseq CLIs (preprocess, train, validate, torchrun)
with this plugin on a tiny synthetic corpus, on CPU, asserting on what they log and write.

Every fairseq-train run logs JSON for every update (``--log-interval 1``), so a
test reads the exact per-update metrics (train_inner), per-validation metrics (valid)
and per-epoch summaries (train).
"""

import dataclasses
import math
import os
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cli_utils, package or not
import cli_utils as cu  # noqa: E402

from fairseq_seqvae.criterions.seqvae_elbo import SeqVAEELBOConfig  # noqa: E402
from fairseq_seqvae.models.seqvae_lstm import SeqVAELSTMConfig  # noqa: E402
from fairseq_seqvae.modules.kl_schedules import KL_SCHEDULES  # noqa: E402
from fairseq_seqvae.modules.poolers import POOLERS  # noqa: E402
from fairseq_seqvae.optim.encoder_decoder import EncoderDecoderOptimizerConfig  # noqa: E402
from fairseq_seqvae.tasks.seqvae_language_modeling import (  # noqa: E402
    SeqVAELanguageModelingConfig,
)

LATENT_DIM = 4  # seqvae_lstm_tiny

# A linear schedule whose beta differs at every update of these short runs.
KL_START, KL_MAX, KL_WARMUP = 0.1, 0.9, 16
LINEAR_KL = ["--kl-schedule", "linear", "--kl-start", KL_START, "--kl-max", KL_MAX,
             "--kl-warmup-updates", KL_WARMUP]


def linear_beta(num_updates: int) -> float:
    """Reference formula (Bowman et al. 2016), independent of the plugin's code."""
    return KL_START + (KL_MAX - KL_START) * min(1.0, num_updates / KL_WARMUP)


def logged_beta_matches_schedule(rows):
    """The k-th update (logged as num_updates = k) runs after k - 1 updates, so its
    beta is the schedule at k - 1 (fairseq's LR schedulers count the same way)."""
    for k, row in rows.items():
        assert row["kl_weight"] == pytest.approx(linear_beta(k - 1), abs=1e-4), (
            f"update {k}: logged kl_weight {row['kl_weight']} != schedule({k - 1}) "
            f"= {linear_beta(k - 1)}"
        )


def load_checkpoint(path: Path):
    return torch.load(path, map_location="cpu", weights_only=False)


def assert_same_tensors(a, b, what):
    assert a.keys() == b.keys(), f"{what}: keys differ: {sorted(a.keys() ^ b.keys())}"
    for key in a:
        if not torch.is_tensor(a[key]):  # e.g. Adam's step count
            assert a[key] == b[key], f"{what}: {key} differs: {a[key]} != {b[key]}"
            continue
        assert torch.equal(a[key], b[key]), (
            f"{what}: {key} differs (max abs diff "
            f"{(a[key].double() - b[key].double()).abs().max().item():.3g})"
        )


_COUNTS = re.compile(
    r"(?P<split>\w+) \((?P<path>[^)]*)\): (?P<lines>\d+) lines, kept (?P<kept>\d+), "
    r"skipped (?P<empty>\d+) empty, skipped (?P<long_skipped>\d+) and truncated "
    r"(?P<long_truncated>\d+) over (?P<max>\S+) words"
)


def dataset_counts(log: str):
    """``{split: {lines, kept, empty, long_skipped, long_truncated}}`` from the
    SentenceDataset log line of each split loaded."""
    out = {}
    for m in _COUNTS.finditer(log):
        out[m.group("split")] = {k: int(v) for k, v in m.groupdict().items()
                                 if k not in ("split", "path", "max")}
    return out


def epoch_rows(rows, epoch):
    return [r for r in rows.values() if int(r["epoch"]) == epoch]


@dataclasses.dataclass
class Corpus:
    root: Path
    data: Path  # binarized
    train_lines: list
    valid_lines: list
    dict_size: int


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    """One binarized synthetic corpus for the whole session, with a few empty lines
    in both splits (they must be skipped and counted)."""
    root = tmp_path_factory.mktemp("corpus")
    train_lines = cu.with_empty_lines(cu.synthetic_sentences(300, seed=1), every=60)
    valid_lines = cu.with_empty_lines(cu.synthetic_sentences(60, seed=2), every=25)
    cu.write_lines(root / "train.txt", train_lines)
    cu.write_lines(root / "valid.txt", valid_lines)
    data = cu.preprocess(root / "bin", root, trainpref=root / "train.txt",
                         validpref=root / "valid.txt")
    # fairseq's Dictionary: 4 specials + words, padded to a multiple of 8
    dict_size = 4 + len((data / "dict.txt").read_text().splitlines())
    return Corpus(root, data, train_lines, valid_lines, dict_size)


@pytest.fixture(scope="session")
def tiny_run(corpus, tmp_path_factory):
    """One epoch of the default tiny model: (save dir, completed process)."""
    root = tmp_path_factory.mktemp("tiny_run")
    proc = cu.train(corpus.data, root / "ck", "--max-epoch", 1, "--no-epoch-checkpoints",
                    cwd=root)
    return root / "ck", proc


@pytest.fixture(scope="session")
def foreign_data(tmp_path_factory) -> Path:
    """A binarized corpus whose own dict.txt is larger than the main corpus's."""
    return other_corpus(tmp_path_factory.mktemp("foreign"), prefix="v", vocab_size=80)


def other_corpus(root: Path, prefix: str, vocab_size: int) -> Path:
    """A binarized corpus with its own dictionary (words ``{prefix}0..``)."""
    root.mkdir(parents=True, exist_ok=True)
    cu.write_lines(root / "train.txt", cu.synthetic_sentences(80, seed=5, prefix=prefix,
                                                              vocab_size=vocab_size))
    cu.write_lines(root / "valid.txt", cu.synthetic_sentences(20, seed=6, prefix=prefix,
                                                              vocab_size=vocab_size))
    return cu.preprocess(root / "bin", root, trainpref=root / "train.txt",
                         validpref=root / "valid.txt")


# --- train, resume, validate ------------------------------------------------------

N = 5  # updates before the resume; an epoch here is about 7 updates


@pytest.mark.parametrize("pooling", sorted(POOLERS))
def test_train_resume_validate(pooling, corpus, tmp_path):
    """N updates, resume to 2N: the update count and beta continue exactly, the
    result is bitwise identical to 2N updates in one go, and fairseq-validate
    evaluates the checkpoint with no model or criterion flags."""
    extra = ["--pooling", pooling, *LINEAR_KL]
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"

    first = cu.train(corpus.data, resumed, *extra, "--max-update", N, cwd=tmp_path)
    rows1 = cu.by_update(cu.json_log(first.stdout, "train_inner"))
    assert sorted(rows1) == list(range(1, N + 1))
    assert rows1[N]["update"] % 1 != 0, "the resume point should be mid-epoch"

    second = cu.train(corpus.data, resumed, *extra, "--max-update", 2 * N, cwd=tmp_path)
    assert f"Loaded checkpoint {resumed}/checkpoint_last.pt (epoch 1 @ {N} updates)" \
        in second.stdout
    rows2 = cu.by_update(cu.json_log(second.stdout, "train_inner"))
    assert sorted(rows2) == list(range(N + 1, 2 * N + 1)), "num_updates must continue from N"
    logged_beta_matches_schedule({**rows1, **rows2})
    for row in rows2.values():
        cu.assert_finite(row, ["loss", "rec", "kl", "elbo", "kl_weight", "ppl"])

    # resuming is exact: same metrics at every update, same parameters and Adam state
    once = cu.train(corpus.data, straight, *extra, "--max-update", 2 * N, cwd=tmp_path)
    rows_once = cu.by_update(cu.json_log(once.stdout, "train_inner"))
    for k in range(N + 1, 2 * N + 1):
        for key in ("loss", "rec", "kl", "elbo", "kl_weight", "gnorm", "bsz", "wpb"):
            assert rows2[k][key] == rows_once[k][key], f"update {k}: {key} differs"
    a = load_checkpoint(resumed / "checkpoint_last.pt")
    b = load_checkpoint(straight / "checkpoint_last.pt")
    assert a["optimizer_history"][-1]["num_updates"] == 2 * N
    assert_same_tensors(a["model"], b["model"], "model parameters")
    for pid, state in a["last_optimizer_state"]["state"].items():
        assert_same_tensors(state, b["last_optimizer_state"]["state"][pid],
                            f"Adam state of parameter {pid}")

    # fairseq-validate: the model config travels in the checkpoint
    assert a["cfg"]["model"]["pooling"] == pooling
    proc = cu.run([cu.console_script("fairseq-validate"),
                   *cu.validate_args(corpus.data, resumed / "checkpoint_last.pt")], tmp_path)
    (valid,) = cu.json_log(proc.stdout, "valid")
    cu.assert_finite(valid, ["valid_elbo", "valid_rec", "valid_kl", "valid_mi", "valid_au"])
    assert valid["valid_elbo"] == pytest.approx(valid["valid_rec"] + valid["valid_kl"],
                                                abs=2e-3)
    assert valid["valid_au"] in range(LATENT_DIM + 1)
    # same parameters as the training run's last validation: KL is analytic and AU
    # uses the whole split, so both agree up to the log's rounding; rec uses one
    # sample of z
    (in_training,) = [r for r in cu.json_log(second.stdout, "valid")
                      if r["valid_num_updates"] == 2 * N]
    assert valid["valid_kl"] == pytest.approx(in_training["valid_kl"], abs=1.5e-3)
    assert valid["valid_au"] == in_training["valid_au"]
    assert valid["valid_rec"] == pytest.approx(in_training["valid_rec"], rel=0.02)


# --- checkpoints, logging ----------------------------------------------------------


# He et al.'s loop: SGD, the learning rate halved after --lr-patience epochs without a better
# validation score. valid_wpb never changes, so with it as the score every epoch after the
# first is a bad one: with patience 1 the rate halves after epochs 3 and 5, and reaches
# --stop-min-lr 0.3 there
PLATEAU = ["--optimizer", "sgd", "--lr", 1, "--clip-norm", 5,
           "--lr-scheduler", "reduce_lr_on_plateau", "--lr-shrink", 0.5, "--lr-patience", 1,
           "--stop-min-lr", 0.3, "--best-checkpoint-metric", "wpb", "--max-epoch", 10]


def test_resume_at_an_epoch_end_keeps_the_plateau_schedule(corpus, tmp_path):
    """A run resumed from the checkpoint of an epoch's end takes the learning-rate step that
    followed that save, with the patience count it had (scripts/patch_fairseq.py, fixes 11
    and 12): it matches an uninterrupted run, and a finished run is not trained on."""
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"

    def epochs(proc):
        return [(r["epoch"], r["train_lr"]) for r in cu.json_log(proc.stdout, "train")]

    once = cu.train(corpus.data, straight, *PLATEAU, cwd=tmp_path)
    schedule = [(1, 1), (2, 1), (3, 1), (4, 0.5), (5, 0.5)]
    assert epochs(once) == schedule
    assert "stopping training because current learning rate (0.25)" in once.stdout

    first = cu.train(corpus.data, resumed, *PLATEAU, "--max-epoch", 3, cwd=tmp_path)
    second = cu.train(corpus.data, resumed, *PLATEAU, cwd=tmp_path)
    assert epochs(first) + epochs(second) == schedule
    a = load_checkpoint(resumed / "checkpoint_last.pt")
    b = load_checkpoint(straight / "checkpoint_last.pt")
    assert_same_tensors(a["model"], b["model"], "model parameters")

    # finished: a re-run stops before training (fairseq saved its checkpoint before the last
    # halving, so without the step it would train on at 0.5)
    third = cu.train(corpus.data, resumed, *PLATEAU, cwd=tmp_path)
    assert "stopping training because current learning rate (0.25)" in third.stdout
    assert cu.json_log(third.stdout, "train_inner") == []


def test_best_checkpoint_has_lowest_valid_elbo(corpus, tmp_path):
    """Two good epochs, then a resume with a diverging learning rate: checkpoint_best.pt
    stays the epoch with the lowest validation elbo, across the resume."""
    ck = tmp_path / "ck"
    good = cu.train(corpus.data, ck, "--max-epoch", 2, cwd=tmp_path)
    bad = cu.train(corpus.data, ck, "--max-epoch", 4, "--lr", 1.0, cwd=tmp_path)
    valid = {int(r["epoch"]): r for r in cu.json_log(good.stdout + bad.stdout, "valid")}
    elbo = {epoch: r["valid_elbo"] for epoch, r in valid.items()}
    assert sorted(elbo) == [1, 2, 3, 4]
    best_epoch = min(elbo, key=elbo.get)
    assert best_epoch != 4, f"setup: lr 1.0 should make the last epochs worse: {elbo}"

    best = load_checkpoint(ck / "checkpoint_best.pt")
    assert best["extra_state"]["val_loss"] == pytest.approx(elbo[best_epoch], abs=1e-3)
    assert best["optimizer_history"][-1]["num_updates"] == valid[best_epoch]["valid_num_updates"]
    assert_same_tensors(best["model"], load_checkpoint(ck / f"checkpoint{best_epoch}.pt")["model"],
                        f"checkpoint_best.pt vs checkpoint{best_epoch}.pt")
    last_valid = cu.json_log(bad.stdout, "valid")[-1]
    assert last_valid["valid_best_elbo"] == pytest.approx(elbo[best_epoch], abs=1e-3)


def test_tensorboard_logs_vae_metrics(corpus, tmp_path):
    tb = tmp_path / "tb"
    proc = cu.train(corpus.data, tmp_path / "ck", *LINEAR_KL, "--max-update", 9,
                    "--tensorboard-logdir", tb, "--no-save", cwd=tmp_path)
    train_inner = cu.tensorboard_scalars(tb / "train_inner")
    train = cu.tensorboard_scalars(tb / "train")
    valid = cu.tensorboard_scalars(tb / "valid")
    for name, scalars, keys in [
        ("train_inner", train_inner, ["kl", "elbo", "rec", "kl_weight"]),
        ("train", train, ["kl", "elbo", "rec", "kl_weight"]),
        ("valid", valid, ["kl", "elbo", "rec", "mi", "au"]),
    ]:
        missing = [k for k in keys if k not in scalars]
        assert not missing, f"{name} events lack {missing}; have {sorted(scalars)}"

    # the events hold the values of the JSON log, at the right steps
    rows = cu.by_update(cu.json_log(proc.stdout, "train_inner"))
    assert dict(train_inner["kl_weight"]) == pytest.approx(
        {k: r["kl_weight"] for k, r in rows.items()}, abs=1e-6)
    logged_beta_matches_schedule({k: {"kl_weight": v} for k, v in train_inner["kl_weight"]})
    valid_log = {int(r["valid_num_updates"]): r for r in cu.json_log(proc.stdout, "valid")}
    assert len(valid_log) == 2  # end of epoch 1, and at --max-update
    for key in ("elbo", "kl", "mi", "au"):
        assert dict(valid[key]) == pytest.approx(
            {k: r[f"valid_{key}"] for k, r in valid_log.items()}, abs=1e-5)


@pytest.mark.slow
def test_distributed_two_cpu_processes(corpus, tmp_path):
    """torchrun, 2 CPU processes, gloo: both ranks join, the logged metrics cover
    both shards, and a resume continues the update count and beta."""
    ck = tmp_path / "ck"

    def torchrun(max_update):
        cmd = [cu.console_script("torchrun"), "--standalone", "--nproc_per_node", 2,
               cu.console_script("fairseq-train"),
               *cu.train_args(corpus.data, ck, *LINEAR_KL, "--max-update", max_update,
                              "--distributed-backend", "gloo",
                              "--ddp-backend", "legacy_ddp")]
        proc = cu.run(cmd, tmp_path)
        out = proc.stdout + proc.stderr
        for rank in (0, 1):
            assert f"distributed init (rank {rank})" in out
        assert "'distributed_world_size': 2" in out
        assert "training on 2 devices" in out
        return proc

    first = torchrun(3)
    second = torchrun(6)
    assert "Loaded checkpoint" in second.stdout and "@ 3 updates)" in second.stdout
    rows1 = cu.by_update(cu.json_log(first.stdout, "train_inner"))
    rows2 = cu.by_update(cu.json_log(second.stdout, "train_inner"))
    assert sorted(rows1) == [1, 2, 3] and sorted(rows2) == [4, 5, 6]
    rows = {**rows1, **rows2}
    logged_beta_matches_schedule(rows)
    for row in rows.values():
        cu.assert_finite(row, ["loss", "rec", "kl", "elbo", "kl_weight"])

    # each update consumes one batch per rank; the logged counts are summed over
    # ranks, so epoch 1 counts every non-empty training sentence exactly once
    sentences = [line for line in corpus.train_lines if line]
    epoch1 = epoch_rows(rows, 1)
    assert len(epoch1) < 6, "epoch 1 should end within the 6 updates"
    assert sum(r["bsz"] for r in epoch1) == len(sentences)
    assert sum(r["wpb"] for r in epoch1) == sum(len(s.split()) + 1 for s in sentences)


def test_lstm_lm_baseline_has_zero_kl(corpus, tmp_path):
    ck = tmp_path / "ck"
    proc = cu.train(corpus.data, ck, "--latent-dim", 0, "--max-update", 4,
                    "--no-epoch-checkpoints", cwd=tmp_path)
    rows = cu.by_update(cu.json_log(proc.stdout, "train_inner"))
    assert sorted(rows) == [1, 2, 3, 4]
    for row in rows.values():
        assert row["kl"] == 0 and row["elbo"] == row["rec"]
        assert row["ppl"] == pytest.approx(2 ** row["nll_loss"], rel=1e-2)
    (valid,) = cu.json_log(proc.stdout, "valid")
    assert valid["valid_kl"] == 0
    assert valid["valid_elbo"] == valid["valid_rec"]
    params = load_checkpoint(ck / "checkpoint_last.pt")["model"]
    assert not [k for k in params if k.startswith("encoder.")], "an LM has no encoder"
    assert "decoder.latent_to_state.weight" not in params


def test_bf16_autocast_trains_close_to_fp32(corpus, tmp_path):
    """--bf16-autocast changes the arithmetic of the training forward pass (so the
    numbers differ) but not the model: the first update's loss agrees to bf16
    precision, and validation, which stays fp32, still runs."""
    runs = {}
    for name, extra in (("fp32", []), ("bf16", ["--bf16-autocast"])):
        proc = cu.train(corpus.data, tmp_path / name, "--max-update", 3, "--no-save", *extra,
                        cwd=tmp_path)
        runs[name] = cu.by_update(cu.json_log(proc.stdout, "train_inner"))
        cu.assert_finite(cu.json_log(proc.stdout, "valid")[0], ["valid_elbo", "valid_au"])
    assert any(runs["bf16"][u]["gnorm"] != runs["fp32"][u]["gnorm"] for u in (1, 2, 3))
    fp32, bf16 = runs["fp32"][1], runs["bf16"][1]
    assert bf16["rec"] == pytest.approx(fp32["rec"], rel=1e-2)
    assert bf16["gnorm"] == pytest.approx(fp32["gnorm"], rel=0.05)


# --- data handling and bad input --------------------------------------------------


def test_empty_lines_are_skipped_and_counted(corpus, tiny_run):
    _, proc = tiny_run
    counts = dataset_counts(proc.stdout)
    for split, lines in [("train", corpus.train_lines), ("valid", corpus.valid_lines)]:
        empty = sum(1 for line in lines if not line)
        assert empty > 0, "setup: the corpus has empty lines"
        assert counts[split] == {"lines": len(lines), "kept": len(lines) - empty,
                                 "empty": empty, "long_skipped": 0, "long_truncated": 0}
    # every non-empty sentence is trained on once in epoch 1, and nothing else
    sentences = [line for line in corpus.train_lines if line]
    rows = cu.by_update(cu.json_log(proc.stdout, "train_inner"))
    assert sum(r["bsz"] for r in rows.values()) == len(sentences)
    assert sum(r["wpb"] for r in rows.values()) == sum(len(s.split()) + 1 for s in sentences)


MAX_WORDS = 8


@pytest.mark.parametrize("mode", ["skip", "truncate"])
def test_max_sentence_length(mode, corpus, tmp_path):
    proc = cu.train(corpus.data, tmp_path / "ck", "--max-sentence-length", MAX_WORDS,
                    "--long-sentences", mode, "--max-epoch", 1, "--no-save", cwd=tmp_path)
    counts = dataset_counts(proc.stdout)
    for split, lines in [("train", corpus.train_lines), ("valid", corpus.valid_lines)]:
        lengths = [len(line.split()) for line in lines if line]
        long = sum(1 for n in lengths if n > MAX_WORDS)
        assert long > 0, "setup: the corpus has long sentences"
        assert counts[split]["long_skipped"] == (long if mode == "skip" else 0)
        assert counts[split]["long_truncated"] == (long if mode == "truncate" else 0)
        assert counts[split]["kept"] == len(lengths) - (long if mode == "skip" else 0)

    # the batches really hold the kept (and cut) sentences: words + EOS each
    lengths = [len(line.split()) for line in corpus.train_lines if line]
    if mode == "skip":
        kept = [n for n in lengths if n <= MAX_WORDS]
    else:
        kept = [min(n, MAX_WORDS) for n in lengths]
    rows = cu.by_update(cu.json_log(proc.stdout, "train_inner"))
    assert sum(r["bsz"] for r in rows.values()) == len(kept)
    assert sum(r["wpb"] for r in rows.values()) == sum(n + 1 for n in kept)


def test_missing_data_dir(tmp_path):
    missing = tmp_path / "no_such_dir"
    proc = cu.run_fails([cu.console_script("fairseq-train"),
                         *cu.train_args(missing, tmp_path / "ck")], tmp_path)
    assert f"data directory not found: {missing}" in proc.stderr
    assert "fairseq-preprocess --only-source" in proc.stderr  # says how to make one


def test_data_dir_without_valid_split(corpus, tmp_path):
    data = tmp_path / "bin"
    data.mkdir()
    for name in ("dict.txt", "train.bin", "train.idx"):
        os.symlink(corpus.data / name, data / name)
    proc = cu.run_fails([cu.console_script("fairseq-train"),
                         *cu.train_args(data, tmp_path / "ck")], tmp_path)
    assert f"split 'valid' not found: no {data}/valid.bin/.idx" in proc.stderr


def test_valid_split_binarized_with_another_dictionary(corpus, foreign_data, tmp_path):
    """valid.bin made with its own, larger dict.txt holds ids the train dict lacks."""
    other = foreign_data
    data = tmp_path / "bin"
    data.mkdir()
    for name in ("dict.txt", "train.bin", "train.idx"):
        os.symlink(corpus.data / name, data / name)
    os.symlink(other / "valid.bin", data / "valid.bin")
    os.symlink(other / "valid.idx", data / "valid.idx")
    proc = cu.run_fails([cu.console_script("fairseq-train"),
                         *cu.train_args(data, tmp_path / "ck")], tmp_path)
    assert f"dictionary mismatch: {data}/valid.bin holds token id" in proc.stderr
    assert f"dict.txt has only {corpus.dict_size} symbols" in proc.stderr


def test_all_empty_training_corpus(corpus, tmp_path):
    cu.write_lines(tmp_path / "empty.txt", [""] * 5)
    data = cu.preprocess(tmp_path / "bin", tmp_path, trainpref=tmp_path / "empty.txt",
                         validpref=corpus.root / "valid.txt", srcdict=corpus.data / "dict.txt")
    proc = cu.run_fails([cu.console_script("fairseq-train"),
                         *cu.train_args(data, tmp_path / "ck")], tmp_path)
    assert f"split 'train' at {data}/train has no usable sentence" in proc.stderr
    assert "'empty_skipped': 5" in proc.stderr


def test_restore_checkpoint_of_another_size(tiny_run, corpus, tmp_path):
    ck, _ = tiny_run
    proc = cu.run_fails([cu.console_script("fairseq-train"),
                         *cu.train_args(corpus.data, tmp_path / "ck", "--restore-file",
                                        ck / "checkpoint_last.pt", "--encoder-hidden-dim", 32,
                                        "--max-update", 1)], tmp_path)
    assert "checkpoint does not match this seqvae_lstm model" in proc.stderr
    assert "encoder.lstm.weight_hh_l0" in proc.stderr  # names what differs
    assert str(ck / "checkpoint_last.pt") in proc.stderr


def test_validate_against_another_dictionary(tiny_run, corpus, foreign_data, tmp_path):
    ck, _ = tiny_run
    proc = cu.run_fails([cu.console_script("fairseq-validate"),
                         *cu.validate_args(foreign_data, ck / "checkpoint_last.pt")], tmp_path)
    assert "dictionary mismatch" in proc.stderr
    assert f"another dictionary ({corpus.dict_size} symbols)" in proc.stderr


def test_validate_against_another_dictionary_of_same_size(tiny_run, corpus, tmp_path):
    ck, _ = tiny_run
    other = other_corpus(tmp_path / "other", prefix="x", vocab_size=50)
    assert 4 + len((other / "dict.txt").read_text().splitlines()) == corpus.dict_size
    proc = cu.run_fails([cu.console_script("fairseq-validate"),
                         *cu.validate_args(other, ck / "checkpoint_last.pt")], tmp_path)
    assert "dictionary mismatch" in proc.stderr
    assert str(other / "dict.txt") in proc.stderr


# --- command line -----------------------------------------------------------------

# ``fairseq-train --help`` cannot list plugin options (fairseq handles --help before it
# adds them, fairseq issue #701); ``seqvae-help`` prints the parser fairseq-train builds.


def _flat(text):
    return " ".join(text.split())


def test_help_lists_every_option_of_our_configs(corpus, tmp_path):
    args = cu.train_args(corpus.data, tmp_path / "ck", "--optimizer", "encoder_decoder")
    proc = cu.run([cu.console_script("seqvae-help"), *args[1:]], tmp_path)
    text = _flat(proc.stdout)
    checked = []
    for config in (SeqVAELSTMConfig, SeqVAEELBOConfig, SeqVAELanguageModelingConfig,
                   EncoderDecoderOptimizerConfig):
        for f in dataclasses.fields(config):
            if f.name.startswith("_") or str(f.default).startswith("${"):
                continue  # fairseq's _name; fields interpolated from fairseq's config
            help_text = f.metadata.get("help")
            assert help_text, f"{config.__name__}.{f.name} has no help text"
            flag = f.name if f.name == "data" else "--" + f.name.replace("_", "-")
            assert f"{flag} " in text, f"{flag} missing from fairseq-train's options"
            assert _flat(help_text) in text, f"help of {flag} missing or changed"
            checked.append(flag)
    for flag in ("--pooling", "--latent-dim", "--kl-schedule", "--free-bits",
                 "--max-sentence-length", "--long-sentences", "--encoder-bidirectional",
                 "--clip-norm-per-half"):
        assert flag in checked
    # choices come from the local registries: a new pooler or schedule file shows up
    assert "--pooling {" + ",".join(sorted(POOLERS)) + "}" in text
    assert "--kl-schedule {" + ",".join(sorted(KL_SCHEDULES)) + "}" in text


def test_help_shows_the_plugin_first_without_a_data_argument(tmp_path):
    """What a new user reads first: a usage line that asks for no data directory, the
    named architectures, then the plugin's options, and fairseq's own only after them."""
    proc = cu.run([cu.console_script("seqvae-help")], tmp_path)
    text = proc.stdout
    assert " | INFO | " not in proc.stderr, proc.stderr  # no library logging before the help
    usage = text.splitlines()[0]
    assert usage.startswith("usage: seqvae-help") and "data" not in usage.lower()
    archs = text.index("architectures (--arch)")
    for arch in ("seqvae_lstm_tiny", "seqvae_lstm_ptb", "seqvae_lstm_yahoo"):
        assert arch in text[archs:archs + 300]
    fairseq_own = text.index("fairseq's own options")
    for flag in ("--pooling", "--kl-schedule", "--max-sentence-length", "--aggressive"):
        assert text.index(flag) < fairseq_own, f"{flag} is not among the plugin's options"
    for flag in ("--lr ", "--max-tokens", "--save-dir"):
        assert text.index(flag) > fairseq_own, f"fairseq's {flag} is mixed into the plugin's"
    short = cu.run([cu.console_script("seqvae-help"), "--plugin-only"], tmp_path).stdout
    assert "--pooling" in short and "--save-dir" not in short
    assert len(short.splitlines()) < len(text.splitlines()) / 2
    bad = cu.run_fails([cu.console_script("seqvae-help"), "--arch", "lstm"], tmp_path)
    assert "choose from seqvae_lstm, seqvae_lstm_ptb" in bad.stderr


# --- real text ----------------------------------------------------------------------


@pytest.mark.slow
def test_ptb_subset_trains_below_uniform_perplexity(tmp_path):
    """A few hundred PTB sentences: one epoch already beats the uniform model
    (the tiny model starts almost uniform: init scale 0.01)."""
    ptb = cu.ptb_dir()
    for split, n in (("train", 400), ("valid", 100)):
        with open(ptb / f"{split}.txt", encoding="utf-8") as f:
            cu.write_lines(tmp_path / f"{split}.txt", [next(f).strip() for _ in range(n)])
    data = cu.preprocess(tmp_path / "bin", tmp_path, trainpref=tmp_path / "train.txt",
                         validpref=tmp_path / "valid.txt")
    vocab = 4 + len((data / "dict.txt").read_text().splitlines())
    proc = cu.train(data, tmp_path / "ck", "--max-epoch", 1, "--no-save", cwd=tmp_path)
    rows = cu.by_update(cu.json_log(proc.stdout, "train_inner"))
    assert rows[1]["ppl"] == pytest.approx(vocab, rel=0.05)
    (valid,) = cu.json_log(proc.stdout, "valid")
    cu.assert_finite(valid, ["valid_elbo", "valid_kl", "valid_mi", "valid_au"])
    assert valid["valid_ppl"] < 0.25 * vocab  # about 0.08 * vocab when written
    assert math.isclose(valid["valid_elbo"], valid["valid_rec"] + valid["valid_kl"],
                        abs_tol=2e-3)
