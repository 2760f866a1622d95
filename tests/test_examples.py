"""The example scripts run end to end (on a small synthetic corpus in the PTB layout)."""

import os

import cli_utils as cu
import pytest

EXAMPLE = cu.REPO / "examples" / "ptb" / "train.sh"


@pytest.mark.parametrize("pooling", ["max", "lm"])
def test_ptb_example_trains_and_passes_extra_flags(tmp_path, pooling):
    text = tmp_path / "text"
    text.mkdir()
    for split, n in (("train", 120), ("valid", 30), ("test", 30)):
        cu.write_lines(text / f"{split}.txt", cu.synthetic_sentences(n, seed=len(split)))
    proc = cu.run(["bash", str(EXAMPLE), "--data", text, "--bin-dir", tmp_path / "bin",
                   "--pooling", pooling, "--save-dir", tmp_path / "ck",
                   "--arch", "seqvae_lstm_tiny", "--max-update", "3", "--cpu",
                   "--log-format", "json", "--log-interval", "1"], tmp_path)
    assert (tmp_path / "bin" / "train.idx").is_file()
    assert (tmp_path / "ck" / "checkpoint_last.pt").is_file()
    assert os.listdir(tmp_path / "ck" / "tb")  # TensorBoard logging is on
    rows = cu.json_log(proc.stdout, "train_inner")
    assert [r["num_updates"] for r in rows] == [1, 2, 3]  # --max-update 3 reached the trainer
    if pooling == "lm":
        assert all(r["kl"] == 0 for r in rows)


def test_ptb_example_names_missing_data(tmp_path):
    proc = cu.run_fails(["bash", str(EXAMPLE), "--data", tmp_path / "nowhere",
                         "--bin-dir", tmp_path / "bin"], tmp_path)
    assert f"{tmp_path / 'nowhere'}/train.txt not found" in proc.stderr
