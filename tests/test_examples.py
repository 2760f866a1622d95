"""The example scripts run end to end: PTB's train.sh on a small synthetic corpus in the PTB
layout, and the whole pipeline (prepare, train every method, evaluate) on a synthetic Yelp."""

import json
import os
import sys
from pathlib import Path

import cli_utils as cu
import pytest
import torch

EXAMPLE = cu.REPO / "examples" / "ptb" / "train.sh"


@pytest.mark.parametrize("pooling", ["max", "lm"])
def test_ptb_example_trains_and_passes_extra_flags(tmp_path, pooling):
    text = tmp_path / "text"
    text.mkdir()
    for split, n in (("train", 120), ("valid", 30), ("test", 30)):
        cu.write_lines(text / f"{split}.txt", cu.synthetic_sentences(n, seed=len(split)))
    proc = cu.run(["bash", str(EXAMPLE), "--data", text, "--bin-dir", tmp_path / "bin",
                   "--no-verify", "--pooling", pooling, "--save-dir", tmp_path / "ck",
                   "--arch", "seqvae_lstm_tiny", "--max-update", "3", "--cpu",
                   "--log-format", "json", "--log-interval", "1"], tmp_path)
    # prepared by examples/ptb/prepare.sh (its dictionary, no padding symbols), which checks
    # the canonical checksums: this text is not PTB, so --no-verify only warns
    prepared = json.loads((tmp_path / "bin" / "prepare.json").read_text())
    assert prepared["dictionary"]["padding"] == 0
    assert "checksum mismatch" in proc.stderr and "Continuing because of --no-verify" in proc.stderr
    assert (tmp_path / "ck" / "checkpoint_last.pt").is_file()
    assert os.listdir(tmp_path / "ck" / "tb")  # TensorBoard logging is on
    rows = cu.json_log(proc.stdout, "train_inner")
    assert [r["num_updates"] for r in rows] == [1, 2, 3]  # --max-update 3 reached the trainer
    if pooling == "lm":
        assert all(r["kl"] == 0 for r in rows)


def test_every_shell_script_is_executable():
    # the docs run them as `examples/table.sh ...`, not `bash examples/table.sh ...`
    scripts = sorted((cu.REPO / "examples").rglob("*.sh"))
    scripts += sorted((cu.REPO / "scripts").glob("*.sh"))
    assert scripts
    assert [s for s in scripts if not os.access(s, os.X_OK)] == []


def test_ptb_example_names_missing_data(tmp_path):
    proc = cu.run_fails(["bash", str(EXAMPLE), "--data", tmp_path / "nowhere",
                         "--bin-dir", tmp_path / "bin"], tmp_path)
    assert f"data directory {tmp_path / 'nowhere'} does not exist (--data DIR)" in proc.stderr


# --- the benchmark pipeline: prepare, train every method, evaluate --------------------

PIPELINE = cu.REPO / "examples"
RESULTS_TABLE = cu.REPO / "scripts" / "results_table.py"
# what fairseq-train's logged configuration must show for each method (choices unquoted)
METHOD_CONFIG = {
    "lm": ["'latent_dim': 0"],
    "last": ["'pooling': last", "'kl_schedule': linear"],
    "max": ["'pooling': max"],
    "mean": ["'pooling': mean"],
    "aggressive": ["'pooling': last", "'aggressive': True"],
    "cyclical": ["'kl_schedule': cyclical", "'kl_start': 0.0", "'kl_num_cycles': 4"],
    "free-bits": ["'pooling': last", "'free_bits': 0.5"],
    "bn-vae": ["'bn_gamma': 0.6"],
    "max-free-bits": ["'pooling': max", "'free_bits': 0.5"],
    "ae-free-bits": ["'pooling': last", "'free_bits': 0.5", "/ae/checkpoint_best.pt'",
                     "training the VAE in"],  # stage 2, after the autoencoder
    "authors-last": ["'pooling': last", "'encoder_merge': mean", "'no_posterior_bias': True",
                     "'encoder_layers': 2", "'_name': 'encoder_decoder'", "'encoder_lr': 0.001"],
    "authors-max": ["'pooling': max", "'encoder_bidirectional': True",
                    "'_name': 'encoder_decoder'", "'decoder_optimizer': sgd"],
    "recipe-last": ["'pooling': last", "'_name': 'encoder_decoder'", "'free_bits': 0.1",
                    "'word_dropout': 0.0", "'encoder_bidirectional': False"],
    "recipe-max": ["'pooling': max", "'encoder_lr': 0.001", "'free_bits': 0.1"],
}


@pytest.fixture(scope="module")
def yelp_pipeline(tmp_path_factory):
    """A synthetic stand-in for Yelp (label<TAB>review lines), prepared with
    examples/yelp/prepare.sh, then every method trained 2 updates by examples/train.sh.
    Returns (root, {method: fairseq-train output})."""
    root = tmp_path_factory.mktemp("yelp_pipeline")
    raw = root / "raw"
    raw.mkdir()
    for seed, (split, n) in enumerate((("train", 120), ("valid", 30), ("test", 20)), 1):
        lines = cu.synthetic_sentences(n, seed=seed)
        cu.write_lines(raw / f"yelp.{split}.txt", [f"{i % 5}\t{s}" for i, s in enumerate(lines)])
    cu.run(["bash", PIPELINE / "yelp" / "prepare.sh", "--data", raw, "--dest", root / "bin"],
           root)
    logs = {}
    for method in METHOD_CONFIG:
        proc = cu.run(["bash", PIPELINE / "train.sh", "--dataset", "yelp", "--method", method,
                       "--data-bin", root / "bin", "--save-dir", root / "ck" / f"yelp-{method}-s1",
                       "--arch", "seqvae_lstm_tiny", "--max-update", 2, "--cpu",
                       "--log-format", "json", "--log-interval", 1], root)
        logs[method] = proc.stdout + proc.stderr
    return root, logs


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHOD_CONFIG))
def test_pipeline_trains_every_method(yelp_pipeline, method):
    root, logs = yelp_pipeline
    log = logs[method]
    shared = ["'lr_scheduler': {'_name': 'reduce_lr_on_plateau'", "'seed': 1",
              "'sentence_avg': True",  # He et al. average the loss over sentences
              "'num_workers': 0",  # a worker forked from the trainer adds gigabytes
              "'malloc_trim_seconds': 10.0"]  # yelp is the Yahoo size: the heap is trimmed
    for setting in METHOD_CONFIG[method] + shared:
        assert setting in log, f"{method}: {setting} not in the training configuration"
    rows = cu.json_log(log, "train_inner")
    assert [r["num_updates"] for r in rows] == [1, 2]
    assert (root / "ck" / f"yelp-{method}-s1" / "checkpoint_best.pt").is_file()


@pytest.mark.slow
def test_pipeline_evaluates_every_trained_method(yelp_pipeline):
    root, _ = yelp_pipeline
    proc = cu.run(["bash", PIPELINE / "eval.sh", "--dataset", "yelp", "--data-bin", root / "bin",
                   "--checkpoints", root / "ck", "--seeds", "1 2", "-k", 2, "--json", "--cpu"],
                  root)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [Path(r["checkpoint"]).parent.name for r in results] == [
        f"yelp-{m}-s1" for m in METHOD_CONFIG]  # in the script's method order
    assert all(r["sentences"] == 20 and r["k"] == 2 for r in results)
    assert ("mi" in results[0], "mi" in results[1]) == (False, True)  # lm, then last
    assert f"not trained yet, skipped: {root / 'ck' / 'yelp-max-s2'}" in proc.stderr

    # the results table: one row per method (its seeds together), in the same order
    results = root / "yelp-test.jsonl"
    results.write_text(proc.stdout)
    table = cu.run([sys.executable, RESULTS_TABLE, results, "--dataset", "yelp"], root).stdout
    rows = cu.markdown_rows(table)
    assert [r[0] for r in rows[1:]] == list(METHOD_CONFIG)
    assert all(r[1] == "1" for r in rows[1:]) and "published" not in rows[0][-1]


@pytest.mark.slow
def test_table_trains_every_row_in_parallel_and_evaluates(yelp_pipeline, tmp_path):
    root, _ = yelp_pipeline
    ck = tmp_path / "check points"  # a path with a space reaches every run whole
    args = ["bash", PIPELINE / "table.sh", "--dataset", "yelp", "--data-bin", root / "bin",
            "--checkpoints", ck, "--methods", "lm last max", "--seeded", "max",
            "--seeds", "1 2", "--jobs", "2", "-k", "2", "--cpu",
            "--eval-flags", "--precision bf16 --batch-size 8",
            "--arch", "seqvae_lstm_tiny", "--max-update", "2"]
    proc = cu.run(args, tmp_path, env={"OMP_NUM_THREADS": ""})  # unset: cores / jobs each
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert f"4 runs, 2 at a time ({threads} thread(s) each)" in proc.stderr
    # a run is evaluated as soon as it is trained: the third starts after one of the first two
    # is evaluated
    before_third = proc.stderr.split("yelp-max-s1: training")[0]
    assert "yelp-lm-s1: done" in before_third or "yelp-last-s1: done" in before_third
    runs = ["yelp-lm-s1", "yelp-last-s1", "yelp-max-s1", "yelp-max-s2"]
    for run in runs:  # the extra flags reached every run
        assert "'max_update': 2" in (ck / f"{run}.log").read_text(), run
    results = [json.loads(line) for line in (ck / "yelp-test.jsonl").read_text().splitlines()]
    assert sorted(Path(r["checkpoint"]).parent.name for r in results) == sorted(runs)
    assert all(r["k"] == 2 and r["split"] == "test" and r["updates"] == 2 for r in results)
    assert all(r["precision"] == "bf16" and r["batch_size"] == 8 for r in results)
    rows = {row[0]: row for row in cu.markdown_rows(proc.stdout)}
    assert (rows["lm"][1], rows["last"][1], rows["max"][1]) == ("1", "1", "2")  # runs per row
    assert (ck / "yelp-table.md").read_text() == proc.stdout
    # run again: the evaluated runs are done, the table is the same
    again = cu.run(args, tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert again.stderr.count(": done before (delete ") == 4, again.stderr
    assert "training" not in again.stderr
    # a finished run is evaluated again without training on: fairseq-train would resume it
    (ck / "yelp-lm-s1.eval.log").unlink()
    again = cu.run(args, tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert "yelp-lm-s1: trained before" in again.stderr, again.stderr
    assert "yelp-lm-s1: done" in again.stderr and "training" not in again.stderr
    assert again.stdout == proc.stdout
    # evaluations run with seqvae-eval --resume: a stopped one's state file is read (this
    # one, from other settings, is refused), and the table says which evaluation failed
    (ck / "yelp-last-s1.eval.log").unlink()
    stale = ck / "yelp-last-s1" / "checkpoint_best.eval-state.pt"
    torch.save({"settings": {"k": 7}}, stale)
    failed = cu.run(args, tmp_path, env={"OMP_NUM_THREADS": "1"}, expect_ok=False)
    assert "yelp-last-s1: evaluation failed" in failed.stderr, failed.stderr
    assert "holds a partial evaluation with other settings" in (
        ck / "yelp-last-s1.eval.log").read_text()
    stale.unlink()
    again = cu.run(args, tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert "yelp-last-s1: done" in again.stderr and again.stdout == proc.stdout
    # another invocation adds its runs to the table: the earlier ones still count
    mean_only = ["mean" if a == "lm last max" else a for a in args]
    more = cu.run(mean_only, tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert "5 evaluated runs in" in more.stderr and "(1 of them this time)" in more.stderr
    rows = {row[0]: row for row in cu.markdown_rows(more.stdout)}
    assert (rows["lm"][1], rows["mean"][1], rows["max"][1]) == ("1", "1", "2")
    proc = cu.run_fails(["bash", PIPELINE / "table.sh", "--dataset", "yelp",
                         "--data-bin", root / "bin", "--methods", "lm vq"], tmp_path)
    assert "unknown method 'vq' in --methods" in proc.stderr
    # table.sh's own options after a fairseq-train flag would reach fairseq-train: refused
    proc = cu.run_fails(["bash", PIPELINE / "table.sh", "--dataset", "yelp",
                         "--data-bin", root / "bin", "--bf16-autocast", "--methods", "lm"],
                        tmp_path)
    assert "--methods comes after the first fairseq-train flag (--bf16-autocast)" in proc.stderr
    assert "training" not in proc.stderr


def test_results_table_means_seeds_and_adds_published(tmp_path):
    runs = [{"checkpoint": f"ck/ptb-{m}-s{s}/checkpoint_best.pt", "split": "test", "k": 500,
             "iw_nll": nll, "ppl": 100.0, "kl": kl, "au": au, "updates": 100, "epochs": 20 + s,
             "train_seconds": 3600 * s} for m, s, nll, kl, au in
            [("lm", 1, 100.0, 0, 0), ("max", 1, 90.0, 5.0, 10), ("max", 2, 92.0, 7.0, 12),
             ("max", 3, 94.0, 6.0, 14)]]
    for r in runs[1:]:
        r["mi"] = 1.5
    runs[3]["pretrain_seconds"] = 1800  # a pretrained encoder's training counts (ae-free-bits)
    runs[0].update(k=100, latent_dim=0)  # each row says its k, and an LM's NLL is exact
    results = cu.write_lines(tmp_path / "r.jsonl", ["not json"] + [json.dumps(r) for r in runs])
    table = cu.run([sys.executable, RESULTS_TABLE, results, "--dataset", "ptb"], tmp_path).stdout
    rows = {row[0]: row for row in cu.markdown_rows(table)}
    assert rows["max"][1:8] == ["3", "500", "92.00 ± 2.00", "100.00 ± 0.00", "6.00 ± 1.00",
                                "1.50 ± 0.00", "12.0 ± 2.0"]
    assert rows["max"][-6:] == ["22 ± 1", "100 ± 0", "2.17 ± 1.26", "-", "-", "-"]  # no published
    assert rows["lm"][1:4] == ["1", "exact", "100.00"] and rows["lm"][6] == "-"  # an LM has no MI
    assert rows["lm"][-3:] == ["100.47", "-", "-"]
    assert rows["aggressive"][:3] == ["aggressive", "0", "-"]  # published, not run here
    assert rows["aggressive"][-3:] == ["99.83", "0.83", "4"]
    assert "4 run(s); split test; k = 500, exact" in table


def test_pipeline_errors_name_the_fix(tmp_path):
    proc = cu.run_fails(["bash", PIPELINE / "train.sh", "--dataset", "yelp",
                         "--data-bin", tmp_path / "nowhere"], tmp_path)
    assert "run examples/yelp/prepare.sh first" in proc.stderr
    proc = cu.run_fails(["bash", PIPELINE / "train.sh", "--dataset", "yelp", "--method", "vq"],
                        tmp_path)
    assert "unknown --method 'vq'" in proc.stderr
    proc = cu.run_fails(["bash", PIPELINE / "train.sh", "--dataset", "imdb"], tmp_path)
    assert "--dataset must be ptb, yahoo or yelp" in proc.stderr
