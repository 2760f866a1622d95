"""The baselines through the real fairseq-train on a tiny corpus, on CPU: beta-VAE,
linear and cyclical KL annealing, free bits, BN-VAE and aggressive training each train
for a few updates and resume; aggressive mode's switch-off through validation (and
that it survives a resume), on 2 processes; autoencoder pretraining (ae-free-bits); the
timing harness."""

import json
import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cli_utils, package or not
import cli_utils as cu  # noqa: E402

from fairseq import tasks  # noqa: E402

LATENT_DIM = 4  # seqvae_lstm_tiny
N = 3  # updates before the resume point, and after it
HE_STOPS = {30, 45, 60, 75, 90, 100}  # inner-loop lengths with He et al.'s 15 / 100
KL_START, KL_MAX, WARMUP = 0.2, 1.0, 8
LINEAR = ["--kl-schedule", "linear", "--kl-start", KL_START, "--kl-max", KL_MAX,
          "--kl-warmup-updates", WARMUP]
CYCLE, RATIO = 4, 0.5
CYCLICAL = ["--kl-schedule", "cyclical", "--kl-start", 0.0, "--kl-max", 1.0,
            "--kl-cycle-updates", CYCLE, "--kl-cycle-ratio", RATIO]


# reference schedules (Bowman et al. 2016; Fu et al. 2019), independent of the plugin
def linear_beta(k):
    return KL_START + (KL_MAX - KL_START) * min(1.0, k / WARMUP)


def cyclical_beta(k):
    return min(1.0, (k % CYCLE) / CYCLE / RATIO)


# method: (fairseq-train flags, beta after k updates, free bits in nats per dimension)
METHODS = {
    "beta_vae": (["--pooling", "last", "--kl-schedule", "constant", "--kl-max", 0.5],
                 lambda k: 0.5, 0.0),
    "linear_free_bits": (["--pooling", "max", *LINEAR, "--free-bits", 0.5], linear_beta, 0.5),
    "cyclical_free_bits": (["--pooling", "last", *CYCLICAL, "--free-bits", 0.25],
                           cyclical_beta, 0.25),
    # Li et al. 2019's rule: each sentence's KL in each dimension
    "sentence_free_bits": (["--pooling", "last", *LINEAR, "--free-bits", 0.5,
                            "--free-bits-mode", "sentence"], linear_beta, 0.5),
    "bn_vae": (["--pooling", "mean", *LINEAR, "--bn-gamma", 0.6], linear_beta, 0.0),
    # a constant-beta phase of 2 updates before the warm-up
    "linear_hold": (["--pooling", "max", *LINEAR, "--kl-hold-updates", 2],
                    lambda k: linear_beta(max(0, k - 2)), 0.0),
    # validation at N in both the resumed and the uninterrupted run, so they compare
    "aggressive": (["--pooling", "last", *LINEAR, "--aggressive",
                    "--validate-interval-updates", N], linear_beta, 0.0),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return cu.binarized_synthetic(tmp_path_factory.mktemp("baselines_corpus"), 300, 60)


def check_objective(row, beta, free_bits, sentence_avg=False):
    """The logged loss (bits per target token, or per sentence with --sentence-avg) against
    rec and kl (nats per sentence): rec + beta * KL, and with free bits lambda between
    rec + beta * max(KL, Z * lambda) and rec + beta * (KL + Z * lambda) (each dimension's KL
    is raised to lambda)."""
    per_sentence = 1 if sentence_avg else row["wpb"] / row["bsz"]
    objective = row["loss"] * math.log(2) * per_sentence  # nats per sentence
    low = row["rec"] + beta * max(row["kl"], LATENT_DIM * free_bits)
    high = row["rec"] + beta * (row["kl"] + LATENT_DIM * free_bits)
    tol = 1e-3 * objective + 2e-3
    assert low - tol <= objective <= high + tol, (
        f"update {row['num_updates']}: objective {objective:.4f} nats/sentence outside "
        f"[{low:.4f}, {high:.4f}] (beta {beta}, free bits {free_bits})"
    )


def train_rows(proc):
    return cu.by_update(cu.json_log(proc.stdout, "train_inner"))


@pytest.mark.parametrize("method", [
    pytest.param(m, marks=pytest.mark.slow) if m == "aggressive" else m for m in sorted(METHODS)
])
def test_method_trains_and_resumes(method, data, tmp_path):
    flags, beta, free_bits = METHODS[method]
    ck = tmp_path / "ck"
    first = cu.train(data, ck, *flags, "--max-update", N, cwd=tmp_path)
    second = cu.train(data, ck, *flags, "--max-update", 2 * N, cwd=tmp_path)
    assert f"Loaded checkpoint {ck}/checkpoint_last.pt (epoch 1 @ {N} updates)" in second.stdout
    rows = {**train_rows(first), **train_rows(second)}
    assert sorted(rows) == list(range(1, 2 * N + 1))
    for k, row in rows.items():
        cu.assert_finite(row, ["loss", "rec", "kl", "elbo", "kl_weight"])
        # the k-th update runs after k - 1 updates
        assert row["kl_weight"] == pytest.approx(beta(k - 1), abs=1e-4), f"update {k}"
        check_objective(row, beta(k - 1), free_bits)
    (valid,) = [r for r in cu.json_log(second.stdout, "valid") if r["valid_num_updates"] == 2 * N]
    cu.assert_finite(valid, ["valid_elbo", "valid_kl", "valid_mi", "valid_au"])
    params = torch.load(ck / "checkpoint_last.pt", weights_only=False)["model"]
    assert ("encoder.mean_bn.shift" in params) == (method == "bn_vae")
    if method != "aggressive":
        assert all("inner_steps" not in row for row in rows.values())
        return

    # aggressive: the inner loop ran before every update until the validation at N
    for k in range(1, N + 1):
        assert rows[k]["inner_steps"] in HE_STOPS, f"update {k}: {rows[k]['inner_steps']}"
    # and resuming is exact: the same metrics as an uninterrupted run, same parameters
    straight = cu.train(data, tmp_path / "straight", *flags, "--max-update", 2 * N,
                        cwd=tmp_path)
    once = train_rows(straight)
    for k in range(N + 1, 2 * N + 1):
        for key in ("inner_steps", "loss", "rec", "kl", "gnorm", "bsz"):
            assert rows[k][key] == once[k][key], f"update {k}: {key} differs after resume"
    theirs = torch.load(tmp_path / "straight" / "checkpoint_last.pt", weights_only=False)["model"]
    for key in params:
        assert torch.equal(params[key], theirs[key]), f"{key} differs after resume"


def test_aggressive_mode_ends_at_an_epoch_end_when_valid_mi_falls_and_stays_off(data,
                                                                               tmp_path):
    """Validation after every update, a few updates per epoch: only the validations at
    epoch ends decide (He et al. check once per epoch). Aggressive mode (inner steps
    > 0) lasts until the first epoch end whose MI is below the previous epoch end's
    (the first is compared with 0), then stays off, also in a resumed run."""
    ck = tmp_path / "ck"
    flags = ["--aggressive", "--pooling", "last", *LINEAR, "--validate-interval-updates", 1,
             "--batch-size", 40, "--max-tokens", 10 ** 5,
             "--required-batch-size-multiple", 1]
    epochs = 4
    first = cu.train(data, ck, *flags, "--max-epoch", epochs, cwd=tmp_path)
    rows = train_rows(first)
    valid = {int(r["valid_num_updates"]): r for r in cu.json_log(first.stdout, "valid")}
    last = max(valid)
    assert sorted(valid) == list(range(1, last + 1))
    mis = {k: r["valid_mi"] for k, r in valid.items()}
    ends = [max(k for k in valid if valid[k]["epoch"] == e) for e in range(1, epochs + 1)]
    assert ends == [last // epochs * e for e in range(1, epochs + 1)] and ends[0] > 1, ends
    off = [k for k in sorted(valid) if valid[k]["valid_aggressive"] == 0]
    assert off, f"setup: the valid MI should fall at an epoch end within {epochs} epochs: {mis}"
    k_off = off[0]
    assert k_off in ends, f"switched off by the mid-epoch validation at update {k_off}"
    assert off == list(range(k_off, last + 1)), "aggressive mode came back on"
    previous = 0.0
    for k in ends[:ends.index(k_off)]:
        assert mis[k] >= previous - 1e-3, f"epoch end {k}: MI fell but aggressive stayed on"
        previous = mis[k]
    assert mis[k_off] <= previous + 1e-3  # the log rounds MI to 3 decimals
    mid_epoch = [k for k in range(1, k_off) if k not in ends]
    # the rule applied at every validation would have ended it at a mid-epoch one
    assert any(mis[k] < mis[k - 1] for k in mid_epoch if k > 1), (
        f"setup: no mid-epoch validation before {k_off} has a falling MI: {mis}")
    assert first.stdout.count("goes on: mid-epoch validation") == len(mid_epoch)
    assert first.stdout.count("aggressive training ends: valid MI") == 1
    for k, row in rows.items():
        if k <= k_off:
            assert row["inner_steps"] in HE_STOPS, f"update {k}: {row['inner_steps']}"
        else:
            assert row["inner_steps"] == 0, f"update {k}: inner loop after switch-off"

    second = cu.train(data, ck, *flags, "--max-epoch", epochs + 1, cwd=tmp_path)
    assert "Loaded checkpoint" in second.stdout and f"@ {last} updates)" in second.stdout
    rows = train_rows(second)
    assert sorted(rows) == list(range(last + 1, last + ends[0] + 1))
    assert all(row["inner_steps"] == 0 for row in rows.values()), "switch-off lost on resume"
    assert all(r["valid_aggressive"] == 0 for r in cu.json_log(second.stdout, "valid"))


@pytest.mark.slow
def test_aggressive_on_two_processes(data, tmp_path):
    """torchrun, 2 CPU processes, gloo, aggressive with max pooling, BN-VAE, cyclical
    annealing and free bits: the ranks run the same inner loops (else the collectives
    would hang) and their parameters stay identical after every update (the encoder
    gradients of the inner loop are averaged across ranks)."""
    dump = tmp_path / "dump"
    dump.mkdir()
    cmd = [cu.console_script("torchrun"), "--standalone", "--nproc_per_node", 2,
           cu.REPO / "tests" / "dist_train_dump.py",
           *cu.train_args(data, tmp_path / "ck", "--aggressive", "--pooling", "max",
                          "--bn-gamma", 0.6, *CYCLICAL, "--free-bits", 0.25,
                          "--max-update", 3, "--distributed-backend", "gloo",
                          "--ddp-backend", "legacy_ddp")]
    proc = cu.run(cmd, tmp_path, env={"SEQVAE_DUMP_DIR": str(dump)})
    assert "training on 2 devices" in proc.stdout + proc.stderr
    rows = train_rows(proc)
    assert sorted(rows) == [1, 2, 3]
    for k, row in rows.items():
        assert row["inner_steps"] in HE_STOPS, f"update {k}: {row['inner_steps']}"
        check_objective(row, cyclical_beta(k - 1), 0.25)
    rank0 = torch.load(dump / "rank0.pt")
    rank1 = torch.load(dump / "rank1.pt")
    assert rank0.keys() == rank1.keys() and any(k.startswith("encoder.") for k in rank0)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"{key} differs between ranks"


def test_aggressive_error_reaches_the_command_line(data, tmp_path):
    proc = cu.run_fails([cu.console_script("fairseq-train"),
                         *cu.train_args(data, tmp_path / "ck", "--aggressive",
                                        "--latent-dim", 0)], tmp_path)
    assert "--aggressive trains an encoder: it needs --latent-dim > 0" in proc.stderr


# --- autoencoder pretraining (Li et al. 2019) -----------------------------------------

PTB_TRAIN = cu.REPO / "examples" / "ptb" / "train.sh"


def test_autoencoder_pretraining_method(tmp_path):
    """examples/ptb/train.sh --method ae-free-bits: stage 1 trains with beta = 0 in
    <save-dir>/ae, stage 2 in <save-dir> starts from stage 1's encoder with a fresh decoder
    and free bits; --init-encoder-from copies exactly the encoder; a re-run keeps the
    trained autoencoder and resumes the VAE."""
    text = cu.synthetic_text(tmp_path / "text", train=120, valid=30, test=30)
    save = tmp_path / "ck"
    ae_log = save / "ae" / "train.log"

    def method(max_update):
        return cu.run(["bash", PTB_TRAIN, "--data", text, "--bin-dir", tmp_path / "bin",
                       "--no-verify", "--method", "ae-free-bits", "--save-dir", save,
                       "--arch", "seqvae_lstm_tiny", "--max-update", max_update, "--cpu",
                       "--log-format", "json", "--log-interval", 1], tmp_path)

    proc = method(3)
    assert f"training the autoencoder in {save / 'ae'} (log {ae_log})" in proc.stdout
    ae = cu.json_log(ae_log.read_text(), "train_inner")
    vae = cu.json_log(proc.stdout, "train_inner")
    assert [r["num_updates"] for r in ae] == [r["num_updates"] for r in vae] == [1, 2, 3]
    assert all(r["kl_weight"] == 0 for r in ae)
    assert all(r["kl_weight"] > 0 for r in vae)  # train.sh's annealing from 0.1
    for r in vae:
        check_objective(r, r["kl_weight"], 0.5, sentence_avg=True)  # ae-free-bits's 0.5
    ae_ckpt = save / "ae" / "checkpoint_best.pt"
    assert f"encoder initialized from {ae_ckpt}" in proc.stdout
    assert (save / "checkpoint_last.pt").is_file()

    # a re-run keeps the trained autoencoder and resumes the VAE (which reads stage 1's
    # encoder again when it builds the model, then loads its own checkpoint over it)
    ae_text = ae_log.read_text()
    resumed = method(4)
    assert "training the autoencoder" not in resumed.stdout
    assert ae_log.read_text() == ae_text
    assert f"Loaded checkpoint {save}/checkpoint_last.pt (epoch 1 @ 3 updates)" in resumed.stdout
    rows = cu.json_log(resumed.stdout, "train_inner")
    assert [r["num_updates"] for r in rows] == [4] and rows[0]["kl_weight"] > 0

    # what stage 2 starts from: stage 1's encoder, and the decoder a new run would have
    ae_params = torch.load(ae_ckpt, weights_only=False)["model"]
    models = {}
    for name, extra in (("init", ["--init-encoder-from", ae_ckpt]), ("fresh", [])):
        cfg = cu.train_config(tmp_path / "bin", tmp_path / name, "--pooling", "last", *extra)
        torch.manual_seed(cfg.common.seed)
        models[name] = tasks.setup_task(cfg.task).build_model(cfg.model).state_dict()
    encoder = [k for k in ae_params if k.startswith("encoder.")]
    decoder = [k for k in ae_params if k.startswith("decoder.")]
    assert encoder and decoder
    for key in encoder:
        assert torch.equal(models["init"][key], ae_params[key]), f"{key} not copied"
    for key in decoder:
        assert torch.equal(models["init"][key], models["fresh"][key]), f"{key} not fresh"
        assert not torch.equal(models["init"][key], ae_params[key]), f"{key} was copied"

    cfg = cu.train_config(tmp_path / "bin", tmp_path / "new", "--encoder-hidden-dim", 32,
                          "--init-encoder-from", ae_ckpt)
    with pytest.raises(ValueError, match="--init-encoder-from: the encoder in .* does not match"):
        tasks.setup_task(cfg.task).build_model(cfg.model)

    # seqvae-eval counts the autoencoder's training in the run's cost, and says when it cannot
    def evaluate():
        proc = cu.run([cu.console_script("seqvae-eval"), tmp_path / "bin", "--path", save,
                       "-k", 2, "--json", "--cpu"], tmp_path)
        return proc, json.loads(next(line for line in proc.stdout.splitlines()
                                     if line.startswith("{")))

    ae_seconds = torch.load(ae_ckpt, weights_only=False)["extra_state"]["previous_training_time"]
    _, result = evaluate()
    assert result["pretrain_seconds"] == pytest.approx(ae_seconds, abs=0.05) and ae_seconds > 0
    assert result["train_seconds"] > 0  # the VAE's own
    ae_ckpt.rename(save / "ae" / "moved.pt")
    proc, result = evaluate()
    assert "pretrain_seconds" not in result
    assert (f"the checkpoint its encoder started from, {ae_ckpt}, was not found, so its "
            f"pretraining time is not counted") in proc.stderr


def test_autoencoder_pretraining_failure_names_its_log(tmp_path):
    text = cu.synthetic_text(tmp_path / "text", train=40, valid=10, test=10)
    save = tmp_path / "ck"
    proc = cu.run_fails(["bash", PTB_TRAIN, "--data", text, "--bin-dir", tmp_path / "bin",
                         "--no-verify", "--method", "ae-free-bits", "--save-dir", save,
                         "--arch", "no_such_arch", "--cpu"], tmp_path)
    log = save / "ae" / "train.log"
    assert f"error: the autoencoder's training failed; see {log}" in proc.stderr
    assert "no_such_arch" in proc.stderr  # the log's tail says why
    assert not (save / "ae" / "pretrained").exists()  # a re-run trains it again


# --- the timing harness ------------------------------------------------------------


@pytest.mark.slow
def test_benchmark_methods_prints_the_table(tmp_path):
    text = cu.synthetic_text(tmp_path / "text", train=200, valid=20)
    proc = cu.run([sys.executable, cu.REPO / "scripts" / "benchmark_methods.py",
                   "--data", text, "--bin-dir", tmp_path / "bin", "--arch", "seqvae_lstm_tiny",
                   "--methods", "last,aggressive", "--updates", 4, "--log-interval", 1,
                   "--batch-size", 16], tmp_path)
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method"))
    last, aggressive = (line.split() for line in lines[header + 2:header + 4])
    assert last[0] == "last" and last[4] == "1.00" and last[5] == "-"
    assert aggressive[0] == "aggressive" and float(aggressive[4]) > 1.0
    assert 30 <= float(aggressive[5]) <= 100  # mean inner steps per update
    assert "13 batches per epoch" in proc.stdout  # 200 sentences, 16 per batch


@pytest.mark.slow
def test_benchmark_memory_prints_the_table(data, tmp_path):
    proc = cu.run([sys.executable, cu.REPO / "scripts" / "benchmark_memory.py",
                   "--data-bin", data, "--arch", "seqvae_lstm_tiny", "--seconds", "0,0.5",
                   "--mmap-threshold", 1048576, "--updates", 4, "--log-interval", 1,
                   "--precision", "fp32", "--sample-seconds", 0.1], tmp_path)
    rows = [line.strip("|").split("|") for line in proc.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| configuration")]
    assert [r[0].strip() for r in rows] == ["no trimming", "trim every 0.5 s",
                                            "mmap threshold 1048576"]
    assert rows[0][5].strip() == "1.00"
    for row in rows:
        peak, median, speed = (float(v.replace(",", "")) for v in row[1:4])
        assert 0 < median <= peak and speed > 0
