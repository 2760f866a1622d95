"""seqvae-plot (fairseq_seqvae/cli/plot.py, also scripts/plot_training.py): log and TensorBoard
parsing (hand-written logs, and real fairseq-train runs whose text log must agree with their
event files), the curves figure and the latent-space figure, run as a user runs them."""

import re
import struct
import sys

import cli_utils as cu
import numpy as np
import pytest
from PIL import Image

from fairseq_seqvae import fairseq_logs
from fairseq_seqvae.cli import plot

SCRIPT = cu.REPO / "scripts" / "plot_training.py"

CURVES = ("kl", "mi", "au", "rec", "elbo")

# lines as fairseq-train 0.12.2 writes them with this plugin (--log-format json)
JSON_LOG = """\
2026-11-21 16:18:31 | INFO | fairseq_cli.train | {'_name': None, 'common': {'log_format': 'json'}}
2026-11-21 16:18:33 | INFO | train_inner | {"epoch": 1, "update": 0.4, "loss": "5.798", "rec": "29.64", "kl": "0", "elbo": "29.64", "kl_weight": "1", "num_updates": "2", "lr": "0.01"}
2026-11-21 16:18:33 | INFO | train_inner | {"epoch": 1, "update": 0.8, "loss": "5.772", "rec": "35.945", "kl": "0.5", "elbo": "36.445", "kl_weight": "1", "num_updates": "4", "lr": "0.01"}
2026-11-21 16:18:33 | INFO | fairseq_cli.train | begin validation on "valid" subset
2026-11-21 16:18:33 | INFO | valid | {"epoch": 1, "valid_loss": "5.723", "valid_rec": "34.906", "valid_kl": "0.5", "valid_elbo": "35.406", "valid_mi": "0.25", "valid_au": "1", "valid_num_updates": "5"}
2026-11-21 16:18:33 | INFO | test | {"epoch": 1, "test_loss": "5.8", "test_kl": "0.6", "test_num_updates": "5"}
2026-11-21 16:18:33 | INFO | train | {"epoch": 1, "train_loss": "5.775", "train_rec": "33.647", "train_kl": "0.25", "train_elbo": "33.897", "train_num_updates": "5", "train_train_wall": "0"}
2026-11-21 16:18:34 | INFO | valid | {"epoch": 2, "valid_loss": "5.442", "valid_rec": "33.191", "valid_kl": "0.75", "valid_elbo": "33.941", "valid_mi": "-0", "valid_au": "2", "valid_num_updates": "10", "valid_best_elbo": "33.941"}
2026-11-21 16:20:00 | INFO | fairseq.checkpoint_utils | loaded checkpoint checkpoint_last.pt (epoch 1 @ 5 updates)
2026-11-21 16:20:01 | INFO | valid | {"epoch": 2, "valid_loss": "5.4", "valid_rec": "33.0", "valid_kl": "0.8", "valid_elbo": "33.8", "valid_mi": "0.1", "valid_au": "2", "valid_num_updates": "10"}
"""

# the same kind of records with --log-format simple
SIMPLE_LOG = """\
2026-11-21 16:18:37 | INFO | train_inner | epoch 001:      2 / 5 loss=5.798, rec=29.64, kl=0, elbo=29.64, kl_weight=1, num_updates=2, lr=0.01, wall=1
2026-11-21 16:18:37 | INFO | valid | epoch 001 | valid on 'valid' subset | loss 5.723 | rec 34.906 | kl 0.5 | elbo 35.406 | mi 0.25 | au 1 | num_updates 5
2026-11-21 16:18:37 | INFO | train | epoch 001 | loss 5.775 | rec 33.647 | kl 0.25 | num_updates 5 | lr 1e-05 | wall 1
2026-11-21 16:18:37 | INFO | valid | epoch 002 | valid on 'valid' subset | loss 5.442 | kl 7.5e-1 | mi -0 | au 2 | num_updates 10 | best_elbo 33.195
"""


def test_parse_json_log():
    series = fairseq_logs.parse_log(JSON_LOG)
    assert sorted(series) == ["test", "train", "train_inner", "valid"]
    valid = series["valid"]
    assert valid["kl"] == [(5, 0.5), (10, 0.8)]  # the resumed run's record replaces the first
    assert valid["mi"] == [(5, 0.25), (10, 0.1)]
    assert valid["au"] == [(5, 1.0), (10, 2.0)]
    assert valid["elbo"] == [(5, 35.406), (10, 33.8)]
    assert valid["best_elbo"] == [(10, 33.941)]
    assert "num_updates" not in valid and "valid_kl" not in valid
    assert series["train_inner"]["kl"] == [(2, 0.0), (4, 0.5)]
    assert series["train"]["kl"] == [(5, 0.25)]
    assert series["train"]["train_wall"] == [(5, 0.0)]  # only the tag prefix is taken off
    assert series["test"]["kl"] == [(5, 0.6)]


def test_parse_simple_log():
    series = fairseq_logs.parse_log(SIMPLE_LOG)
    assert series["valid"]["kl"] == [(5, 0.5), (10, 0.75)]
    assert series["valid"]["mi"] == [(5, 0.25), (10, 0.0)]
    assert series["valid"]["au"] == [(5, 1.0), (10, 2.0)]
    assert series["valid"]["epoch"] == [(5, 1.0), (10, 2.0)]
    assert series["train_inner"]["rec"] == [(2, 29.64)]
    assert series["train_inner"]["lr"] == [(2, 0.01)]
    assert series["train"]["lr"] == [(5, 1e-05)]
    assert "elbo" not in series["train"]


def test_run_names():
    assert plot.run_spec("max=runs/a.log") == ("max", "runs/a.log")
    assert plot.run_spec("checkpoints/ptb-max/") == ("ptb-max", "checkpoints/ptb-max/")
    with pytest.raises(plot.PlotError, match="two runs are named 'x'"):
        plot.named_runs(["x=a.log", "x=b.log"])


def test_pca_2d_finds_the_principal_plane():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(6, 6)))[0][:, :3]  # 3 orthonormal directions
    latent = rng.normal(size=(500, 3)) * [5.0, 2.0, 0.1]
    x = latent @ basis.T + 3.0  # N x 6, offset
    coords, ratios = plot.pca_2d(x)
    # the projection keeps the two large directions (up to sign) and their variance shares
    for k in range(2):
        assert abs(np.corrcoef(coords[:, k], latent[:, k])[0, 1]) > 0.999
    expected = latent.var(axis=0)[:2] / latent.var(axis=0).sum()
    assert np.allclose(ratios, expected, atol=0.01)
    assert np.allclose(coords.mean(axis=0), 0, atol=1e-9)
    # the sign follows the data (the largest loading is made positive), not the SVD's whim
    assert np.allclose(plot.pca_2d(-x)[0], -coords)
    one_dim, ratios = plot.pca_2d(x[:, :1])
    assert np.allclose(one_dim[:, 1], 0) and ratios[0] == pytest.approx(1.0)


def test_length_buckets_and_category_order():
    sentences = ["a"] * 4 + ["a b c"] * 4 + ["a b c d e f"] * 4 + ["w " * 10] * 4
    assert plot.length_buckets(sentences, 4) == ["1"] * 4 + ["3"] * 4 + ["6"] * 4 + ["10"] * 4
    two = plot.length_buckets(sentences, 2)
    assert two == ["1-3"] * 8 + ["6-10"] * 8
    assert plot.category_order(two + ["11-20"]) == ["1-3", "6-10", "11-20"]
    assert plot.length_buckets(["a b"] * 5, 3) == ["2"] * 5
    assert plot.category_order(["10", "2", "1", "-0.5"]) == ["-0.5", "1", "2", "10"]
    assert plot.category_order(["pos", "neg"]) == ["neg", "pos"]


# ---- real fairseq-train logs and event files ---------------------------------------


@pytest.fixture(scope="module")
def real_runs(trained_vae, tmp_path_factory):
    """Two short fairseq-train runs on trained_vae's data, one per text log format,
    each also writing TensorBoard events: {format: (log path, save dir)}."""
    root = tmp_path_factory.mktemp("plot_runs")
    runs = {}
    for fmt in ("json", "simple"):
        save_dir = root / f"run-{fmt}"
        proc = cu.train(trained_vae.data, save_dir, "--max-epoch", 2, "--no-save",
                        "--log-format", fmt, "--log-interval", 2,
                        "--tensorboard-logdir", save_dir / "tb", cwd=root)
        log = root / f"{fmt}.log"
        log.write_text(proc.stdout + proc.stderr)
        runs[fmt] = (log, save_dir)
    return runs


def assert_png(path, min_size=(400, 250)):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert width >= min_size[0] and height >= min_size[1], (width, height)
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[:2] == (height, width)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # drawn on, not blank
    return width, height


@pytest.mark.parametrize("fmt", ["json", "simple"])
def test_text_log_agrees_with_tensorboard(real_runs, fmt):
    log, save_dir = real_runs[fmt]
    from_log = fairseq_logs.load_run(str(log))
    from_events = fairseq_logs.load_run(str(save_dir))  # finds save_dir/tb/{train_inner,train,valid}
    assert sorted(from_events) == ["train", "train_inner", "valid"]
    for metric in CURVES:
        text_points, event_points = from_log["valid"][metric], from_events["valid"][metric]
        assert [u for u, _ in text_points] == [u for u, _ in event_points]
        assert np.allclose([v for _, v in text_points], [v for _, v in event_points], atol=1e-5)
    # one validation per epoch; the updates are those of the end of each epoch
    train_updates = [u for u, _ in from_log["train"]["kl"]]
    assert [u for u, _ in from_log["valid"]["kl"]] == train_updates and len(train_updates) == 2
    inner = [u for u, _ in from_events["train_inner"]["rec"]]
    assert inner == sorted(inner) and inner[0] == 2 and inner[-1] <= train_updates[-1]
    # fairseq-train's own JSON lines, as the test helpers read them
    if fmt == "json":
        valid = cu.json_log(log.read_text(), "valid")
        assert [r["valid_kl"] for r in valid] == [v for _, v in from_log["valid"]["kl"]]


def test_curves_figure_from_logs_and_events(real_runs, tmp_path):
    partial = tmp_path / "partial" / "train.log"  # a run that logged no mi / au
    partial.parent.mkdir()
    partial.write_text(re.sub(r'"valid_(mi|au)": "[^"]*", ', "", JSON_LOG))
    assert "mi" not in fairseq_logs.load_run(str(partial))["valid"]
    out = tmp_path / "curves.png"
    proc = cu.run([sys.executable, SCRIPT, "curves", f"json={real_runs['json'][0]}",
                   f"simple-tb={real_runs['simple'][1] / 'tb'}", partial, "--train",
                   "--out", out], tmp_path)
    assert f"wrote {out}: kl, mi, au, rec, elbo against updates for 3 run(s)" in proc.stdout
    assert "run 'partial' has no valid mi; its line is left out" in proc.stderr
    assert "run 'partial' has no valid au; its line is left out" in proc.stderr
    assert proc.stderr.count("note:") == 2  # its kl, rec and elbo are plotted
    width, height = assert_png(out, min_size=(1000, 600))  # a 2 x 3 grid
    assert width > height


def test_curves_single_metric_and_errors(real_runs, tmp_path):
    out = tmp_path / "kl.png"
    proc = cu.run([sys.executable, SCRIPT, "curves", real_runs["json"][0], "--metrics",
                   "kl,nothing", "--out", out], tmp_path)
    assert "no run logged valid nothing: no nothing panel" in proc.stderr
    assert "kl against updates for 1 run(s)" in proc.stdout
    assert_png(out)
    proc = cu.run_fails([sys.executable, SCRIPT, "curves", real_runs["json"][0], "--metrics",
                         "mi", "--split", "train", "--out", out], tmp_path)
    assert "nothing to plot: no run has train values of mi" in proc.stderr
    proc = cu.run_fails([sys.executable, SCRIPT, "curves", tmp_path / "missing.log"], tmp_path)
    assert f"error: {tmp_path / 'missing.log'} does not exist" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cu.run_fails([sys.executable, SCRIPT, "curves", empty], tmp_path)
    assert "no TensorBoard event files with scalars and no train.log" in proc.stderr


def test_curves_of_save_dirs_holding_train_log(tmp_path):
    """seqvae-compare's folders: a --save-dir with the fairseq-train log as train.log
    and no TensorBoard events (the quick start's last=DIR max=DIR)."""
    for name in ("last", "max"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.log").write_text(JSON_LOG)
    assert fairseq_logs.load_run(str(tmp_path / "max")) == fairseq_logs.parse_log(JSON_LOG)
    out = tmp_path / "curves.png"
    proc = cu.run([cu.console_script("seqvae-plot"), "curves", f"last={tmp_path / 'last'}",
                   f"max={tmp_path / 'max'}", "--out", out], tmp_path)
    assert "against updates for 2 run(s)" in proc.stdout
    assert_png(out)


def test_every_option_has_help():
    for command in ("curves", "latent"):
        text = " ".join(cu.run([cu.console_script("seqvae-plot"), command, "--help"],
                               cu.REPO).stdout.split())
        assert "--out OUT the PNG file to write" in text
        assert "--dpi DPI resolution of the PNG in dots per inch (default 120)" in text


def test_collapsed_panel_is_marked(tmp_path):
    rng = np.random.default_rng(0)
    collapsed = 1e-4 * rng.standard_normal((50, 4))  # every input gets the same mean
    spread = rng.standard_normal((50, 4))
    out = tmp_path / "latent.png"
    rows = plot.plot_latent([("last", collapsed), ("max", spread)], None, "", str(out))
    table = plot.format_latent_rows(rows)
    last, best = table.splitlines()[1:]
    assert last.split()[3] == "0" and last.endswith("collapsed")
    assert float(last.split()[7]) < 1e-3
    assert best.split()[3] == "4" and not best.endswith("collapsed")
    assert_png(out)


# ---- latent space -----------------------------------------------------------------


def test_latent_figure_side_by_side(trained_vae, tmp_path):
    text = cu.write_lines(tmp_path / "test.txt", trained_vae.test_lines + [""])
    labels = cu.write_lines(tmp_path / "test.labels",
                            [str(len(s.split()) % 3) for s in trained_vae.test_lines] + ["0"])
    out = tmp_path / "latent.png"
    proc = cu.run([sys.executable, SCRIPT, "latent", f"best={trained_vae.save_dir}",
                   f"last={trained_vae.save_dir / 'checkpoint_last.pt'}", "--data",
                   trained_vae.data, "--text", text, "--labels", labels, "--cpu", "--out", out],
                  tmp_path)
    assert "skipped 1 empty line(s)" in proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:3]}
    assert sorted(rows) == ["best", "last"]
    n = len(trained_vae.test_lines)
    for row in rows.values():
        assert row[1:3] == [str(n), "4"]  # sentences, latent dimensions of seqvae_lstm_tiny
        assert 0 <= int(row[3]) <= 4
    width, height = assert_png(out)
    assert width > 1.5 * height  # two panels side by side

    out = tmp_path / "by_length.png"  # the installed command, as the README shows it
    proc = cu.run([cu.console_script("seqvae-plot"), "latent", trained_vae.save_dir,
                   "--text", text, "--buckets", 3, "--cpu", "--out", out], tmp_path)
    assert f"wrote {out}" in proc.stdout
    assert_png(out)


def test_latent_input_errors(trained_vae, tmp_path):
    text = cu.write_lines(tmp_path / "t.txt", trained_vae.test_lines[:5])
    labels = cu.write_lines(tmp_path / "l.txt", ["a", "b"])
    proc = cu.run_fails([sys.executable, SCRIPT, "latent", trained_vae.save_dir, "--text", text,
                         "--labels", labels, "--cpu"], tmp_path)
    assert "has 2 lines but" in proc.stderr and "one label per sentence" in proc.stderr
    text = cu.write_lines(tmp_path / "t25.txt", trained_vae.test_lines[:25])
    many = cu.write_lines(tmp_path / "many.txt", [f"L{i}" for i in range(25)])
    proc = cu.run_fails([sys.executable, SCRIPT, "latent", trained_vae.save_dir, "--text", text,
                         "--labels", many, "--cpu", "--out", tmp_path / "x.png"], tmp_path)
    assert "has 25 distinct labels: at most 20" in proc.stderr
    proc = cu.run_fails([sys.executable, SCRIPT, "latent", tmp_path / "nowhere", "--text", text,
                         "--cpu"], tmp_path)
    assert "checkpoint not found" in proc.stderr
