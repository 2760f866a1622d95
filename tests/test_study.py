"""scripts/study.py through its command line on a tiny corpus: the grid expands to
settings x poolings x seeds with inherited flags, every run is trained with the real
fairseq-train, evaluated at the end of warm-up and at the end, reported in a table and
figures; a re-run resumes unfinished runs, reuses finished ones (also from a kept results
file), and reports failures."""

import json
import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cli_utils, package or not
import cli_utils as cu  # noqa: E402

STUDY = Path(__file__).resolve().parents[1] / "scripts" / "study.py"
WARMUP = 3


def write_grid(path: Path, data: Path, max_update: int, settings=None,
               poolings=("last", "max")) -> Path:
    grid = {
        "name": "tiny",
        "data": str(data),
        "poolings": list(poolings),
        "seeds": [1],
        "flags": ["--arch", "seqvae_lstm_tiny", "--optimizer", "adam", "--lr", "0.01",
                  "--max-tokens", "500", "--cpu", "--kl-schedule", "linear", "--kl-start", "0",
                  "--kl-warmup-updates", str(WARMUP), "--max-update", str(max_update),
                  "--validate-interval-updates", "3", "--log-interval", "1"],
        "settings": settings or {
            "adam": {},
            "split": {"extends": "adam", "flags": ["--optimizer", "encoder_decoder",
                                                   "--lr", "0.5"]},
        },
        "eval": {"k": 5, "test_phases": ["final"]},
    }
    path.write_text(json.dumps(grid), encoding="utf-8")
    return path


def study(*args, cwd, expect_ok=True):
    return cu.run([sys.executable, STUDY, *args], cwd, expect_ok=expect_ok, timeout=900)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return cu.binarized_synthetic(tmp_path_factory.mktemp("study_corpus"), 200, 40, 40)


def rows_of(out: Path):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_dry_run_lists_every_run_with_inherited_flags(data, tmp_path):
    grid = write_grid(tmp_path / "grid.json", data, 6)
    proc = study(grid, "--dry-run", cwd=tmp_path)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 8 and "4 runs, 24 updates in all" in proc.stderr
    split = [line for line in lines if "split-max-s1" in line]
    # two fairseq-train calls: to the end of warm-up, then (resuming) to the end
    assert len(split) == 2
    budgets = [re.findall(r"--max-update (\d+)", line)[-1] for line in split]  # the last wins
    assert budgets == [str(WARMUP), "6"]
    # the setting's own flags come after the grid's and the parent's: the last one wins
    assert split[0].index("--optimizer adam") < split[0].index("--optimizer encoder_decoder")
    assert "--pooling max --seed 1" in split[0]
    # checkpoint_last.pt at every validation, so a stopped run loses little
    assert "--save-interval-updates 3 --keep-interval-updates 1" in split[1]


def test_runs_resume_evaluate_and_report(data, tmp_path):
    out = tmp_path / "out"
    short = write_grid(tmp_path / "short.json", data, WARMUP, poolings=["max"])
    study(short, "--out", out, cwd=tmp_path)
    assert {(r["name"], r["phase"], r["updates"]) for r in rows_of(out)} == {
        (name, phase, WARMUP) for name in ("adam-max-s1", "split-max-s1")
        for phase in ("warmup", "final")}

    # a longer budget: every run resumes from its checkpoint instead of starting over
    grid = write_grid(tmp_path / "grid.json", data, 2 * WARMUP, poolings=["max"])
    proc = study(grid, "--out", out, cwd=tmp_path)
    for name in ("adam-max-s1", "split-max-s1"):
        log = (out / name / "train.log").read_text()
        assert f"(epoch 1 @ {WARMUP} updates)" in log, name
    rows = rows_of(out)
    assert len(rows) == 4
    for row in rows:
        assert row["updates"] == {"warmup": WARMUP, "final": 2 * WARMUP}[row["phase"]]
        # beta of the last update before the checkpoint (the k-th update runs at k - 1)
        last_beta = {"warmup": (WARMUP - 1) / WARMUP, "final": 1.0}[row["phase"]]
        assert row["beta"] == pytest.approx(last_beta, abs=1e-4)
        assert 0 <= row["valid_au"] <= 4 and row["valid_mi"] >= 0
        assert row["valid_elbo"] > row["valid_kl"] >= 0
        # test IW-NLL at the final checkpoint only, as the grid asks
        assert (row["test_iw_nll"] is None) == (row["phase"] == "warmup")
        if row["phase"] == "final":
            assert 0 < row["test_iw_nll"] < row["valid_elbo"] + 20
        assert row["k"] == 5 and row["train_min"] > 0
    table = (out / "table.md").read_text()
    cells = [[c.strip() for c in line.strip(" |").split("|")] for line in table.splitlines()]
    assert sum(row[:3] == ["split", "max", "1"] for row in cells) == 2
    assert "test IW-NLL" in table
    assert table.strip().splitlines()[-4:] == proc.stdout.strip().splitlines()[-4:]
    assert (out / "curves-adam.png").stat().st_size > 0
    assert (out / "curves-split.png").stat().st_size > 0
    assert (out / "summary.png").stat().st_size > 0

    # once more: nothing trains and nothing is evaluated again
    evals = sorted(out.glob("*/*.json"))
    stamps = [p.stat().st_mtime for p in evals]
    again = study(grid, "--out", out, cwd=tmp_path)
    assert "training" not in again.stderr and "evaluating" in again.stderr
    assert [p.stat().st_mtime for p in evals] == stamps
    assert rows_of(out) == rows
    # --only picks the runs to train; the report still covers the whole grid
    study(grid, "--out", out, "--only", "adam-max", cwd=tmp_path)
    assert rows_of(out) == rows

    # a kept results file outlives the runs' folders (a fresh checkout): recorded runs are
    # reported as recorded and not trained again
    kept = tmp_path / "kept.jsonl"
    kept.write_text((out / "results.jsonl").read_text())
    fresh = tmp_path / "fresh"
    proc = study(grid, "--out", fresh, "--results", kept, cwd=tmp_path)
    assert "training" not in proc.stderr and "evaluating" not in proc.stderr
    assert proc.stderr.count("recorded in the results file; not trained again") == 2
    assert [json.loads(line) for line in kept.read_text().splitlines()] == rows
    assert (fresh / "table.md").read_text() == table


def test_failed_run_is_reported(data, tmp_path):
    out = tmp_path / "out"
    grid = write_grid(tmp_path / "grid.json", data, 2, settings={
        "bad": {"flags": ["--encoder-merge", "sideways"]}})
    proc = study(grid, "--out", out, "--only", "bad-max", cwd=tmp_path, expect_ok=False)
    assert "bad-max-s1: FAILED" in proc.stderr
    (row,) = rows_of(out)
    assert row["phase"] == "failed" and "fairseq-train failed" in row["error"]
    table = (out / "table.md").read_text()
    assert re.search(r"\| bad +\| max +\| 1 +\| failed +\|", table), table


def test_bad_grid_is_a_clear_error(data, tmp_path):
    grid = write_grid(tmp_path / "grid.json", data, 2, settings={
        "a": {"extends": "b"}, "b": {"extends": "a"}})
    proc = study(grid, "--dry-run", cwd=tmp_path, expect_ok=False)
    assert "study.py: error: settings extend each other in a cycle" in proc.stderr
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    proc = study(tmp_path / "broken.json", cwd=tmp_path, expect_ok=False)
    assert "broken.json is not valid JSON" in proc.stderr
    (tmp_path / "bad.jsonl").write_text('{"name": "a-max-s1"}\nnot json\n', encoding="utf-8")
    proc = study(write_grid(tmp_path / "ok.json", data, 2), "--results", tmp_path / "bad.jsonl",
                 cwd=tmp_path, expect_ok=False)
    assert "bad.jsonl, line 2: not a row of results" in proc.stderr
    assert "Traceback" not in proc.stderr
