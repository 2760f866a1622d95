"""Evaluation: the importance-weighted NLL against -log p(x) by numerical integration,
the bounds it must respect, and ``seqvae-eval`` end to end on a trained checkpoint."""

import json
import math
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cli_utils, package or not
import cli_utils as cu  # noqa: E402

from fairseq_seqvae.scoring import (  # noqa: E402
    importance_weights,
    iw_log_likelihood,
    sequence_log_prob,
)

LOG_2PI = math.log(2 * math.pi)


@pytest.fixture
def one_dim_model(make_model):
    """A 1-D latent model whose decoder depends strongly on z, with a posterior wider
    than the prior (std 2): the importance weights p(z) / q(z|x) are then bounded,
    so the IW estimate converges fast, while the ELBO stays far from log p(x)."""
    model = make_model(latent_dim=1, init_scale=0.3).eval()
    with torch.no_grad():
        model.decoder.latent_to_state.weight.mul_(30)
        model.decoder.lstm.weight_ih_l0[:, -1:].mul_(30)  # the z input column
        model.encoder.to_posterior.weight[1].zero_()  # row 1: log-variance
        model.encoder.to_posterior.bias[1] = math.log(4.0)
    return model


def log_px_by_integration(model, batch):
    """log p(x) = log integral p(x|z) N(z; 0, 1) dz on a fine grid (Riemann sum)."""
    grid = torch.linspace(-8, 8, 4001)
    log_prior = -0.5 * (LOG_2PI + grid.double() ** 2)
    net = batch["net_input"]
    out = []
    for b in range(batch["nsentences"]):
        prev = net["prev_output_tokens"][b:b + 1].expand(len(grid), -1)
        target = batch["target"][b:b + 1].expand(len(grid), -1)
        with torch.no_grad():
            log_px_z = sequence_log_prob(model, prev, target, grid.unsqueeze(1))
        out.append(torch.logsumexp(log_px_z + log_prior, 0).item()
                   + math.log((grid[1] - grid[0]).item()))
    return torch.tensor(out, dtype=torch.float64)


def test_iw_nll_matches_numerical_integration(one_dim_model, make_sentences, make_batch):
    batch = make_batch(make_sentences([1, 3, 6, 10], seed=1))
    exact = log_px_by_integration(one_dim_model, batch)
    torch.manual_seed(0)
    weights = importance_weights(one_dim_model, batch, k=20000)
    iw = torch.logsumexp(weights["log_w"], 1) - math.log(20000)
    # measured over seeds: |error| <= 0.01 nats; dropping log p(z) - log q(z|x) from
    # the weights would be off by 0.1 on the longer sentences
    torch.testing.assert_close(iw, exact, atol=0.02, rtol=0)
    elbo = weights["log_w"].mean(1)
    assert (elbo < exact - 0.5).all(), "the test needs an ELBO far from log p(x)"


def test_iw_bound_rises_with_k_towards_log_px(one_dim_model, make_sentences, make_batch):
    batch = make_batch(make_sentences([2, 5, 8], seed=2))
    exact = log_px_by_integration(one_dim_model, batch).mean().item()
    torch.manual_seed(1)
    log_w = importance_weights(one_dim_model, batch, k=10000)["log_w"]  # B x 10000
    bounds = []
    for k in (1, 10, 100, 1000, 10000):  # mean over disjoint groups of k samples
        groups = log_w.view(log_w.size(0), -1, k)
        bounds.append((torch.logsumexp(groups, 2) - math.log(k)).mean().item())
    assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), bounds
    assert bounds[0] < exact - 0.5  # k = 1 is the ELBO
    assert bounds[-1] == pytest.approx(exact, abs=0.01)


def test_elbo_never_exceeds_iw_bound(make_model, make_sentences, make_batch):
    model = make_model().eval()
    batch = make_batch(make_sentences([4, 1, 7, 3], seed=3))
    torch.manual_seed(2)
    log_w = importance_weights(model, batch, k=50)["log_w"]
    iw = torch.logsumexp(log_w, 1) - math.log(50)
    assert (log_w.mean(1) <= iw + 1e-12).all()  # Jensen, on the same samples


def test_chunking_does_not_change_the_estimate(make_model, make_sentences, make_batch):
    model = make_model().eval()
    batch = make_batch(make_sentences([4, 1, 7], seed=4))
    results = []
    for max_tokens in (1, 50, 10 ** 6):  # one sample per pass ... all in one pass
        torch.manual_seed(3)
        results.append(iw_log_likelihood(model, batch, k=37, max_tokens=max_tokens))
    # the same samples; only float32 rounding of differently shaped products differs
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(results[0], results[2], rtol=0, atol=1e-6)


def test_bf16_decoder_is_close_to_fp32_on_the_same_samples(make_model, make_sentences,
                                                           make_batch):
    model = make_model().eval()
    batch = make_batch(make_sentences([4, 1, 7, 12], seed=6))
    results = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(3)  # the same z samples for both
        results[precision] = iw_log_likelihood(model, batch, k=20, precision=precision)
    diff = (results["bf16"] - results["fp32"]).abs()
    # bfloat16 keeps 8 bits of mantissa: a few hundredths of a nat on these sentences,
    # not exactly zero (the autocast does act)
    assert (diff < 0.05).all() and diff.max() > 0, diff
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        iw_log_likelihood(model, batch, k=2, precision="fp16")


def test_lstm_lm_log_likelihood_is_exact(make_model, make_sentences, make_batch):
    model = make_model(latent_dim=0).eval()
    batch = make_batch(make_sentences([4, 1, 7], seed=5))
    with torch.no_grad():
        logits, _ = model(**batch["net_input"])
        lprobs = torch.log_softmax(logits.double(), -1)
    real = batch["target"].ne(model.decoder.padding_idx)
    ref = (lprobs.gather(-1, batch["target"].unsqueeze(-1)).squeeze(-1) * real).sum(1)
    for k in (1, 5):
        torch.testing.assert_close(iw_log_likelihood(model, batch, k=k), ref,
                                   rtol=0, atol=1e-5)


def test_k_below_one_is_an_error(make_model, make_sentences, make_batch):
    with pytest.raises(ValueError, match="must be >= 1"):
        iw_log_likelihood(make_model().eval(), make_batch(make_sentences([3])), k=0)


# --- seqvae-eval, the command -------------------------------------------------------


def seqvae_eval(data, *args, cwd, expect_ok=True):
    cmd = [cu.console_script("seqvae-eval"), data, *args]
    return cu.run(cmd, cwd, expect_ok=expect_ok)


def json_results(proc):
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def lm_checkpoint(trained_lm):
    return trained_lm.save_dir / "checkpoint_best.pt"


def test_seqvae_eval_table_and_json(trained_vae, lm_checkpoint, tmp_path):
    vae = trained_vae.save_dir
    table = seqvae_eval(trained_vae.data, "--path", f"{vae}:{lm_checkpoint}", "-k", 20,
                        cwd=tmp_path).stdout
    assert "30 sentences" in table and "k = 20 importance samples" in table
    assert "MI over batches of 32" in table
    header = next(line for line in table.splitlines() if "IW-NLL" in line)
    for column in ("PPL", "-ELBO", "KL", "MI", "MI (split)", "AU", "feat-var"):
        assert column in header
    assert len([line for line in table.splitlines() if "checkpoint_best.pt" in line]) >= 2

    args = ["--path", vae, "-k", 20, "--batch-size", 8, "--json", "--seed", 5]
    first = json_results(seqvae_eval(trained_vae.data, *args, cwd=tmp_path))
    again = json_results(seqvae_eval(trained_vae.data, *args, cwd=tmp_path))
    other_seed = json_results(seqvae_eval(trained_vae.data, *args[:-1], 6, cwd=tmp_path))
    (r,) = first
    assert {k: v for k, v in r.items() if k != "seconds"} == {
        k: v for k, v in again[0].items() if k != "seconds"}, "not deterministic"
    assert other_seed[0]["iw_nll"] != r["iw_nll"]
    assert r["sentences"] == 30 and r["k"] == 20 and r["batch_size"] == 8
    assert r["tokens"] == sum(len(line.split()) + 1 for line in trained_vae.test_lines)
    assert r["ppl"] == pytest.approx(math.exp(r["iw_nll"] * r["sentences"] / r["tokens"]))
    assert r["elbo"] == pytest.approx(r["rec"] + r["kl"])
    assert r["elbo"] >= r["iw_nll"] - 0.05  # up to sampling noise
    assert 0 <= r["au"] <= r["latent_dim"] == 4
    assert -1e-3 <= r["mi"] <= math.log(8) + 1e-3
    # MI (split): q(z) over all 30 posteriors, whatever the batch size, one sample each;
    # so with one batch of all 30 and k = 1 it is the batch MI itself
    assert -0.05 <= r["mi_split"] <= math.log(30) + 1e-3  # one sample: noisier than "mi"
    (one_batch,) = json_results(seqvae_eval(trained_vae.data, "--path", vae, "-k", 1,
                                            "--batch-size", 30, "--json", cwd=tmp_path))
    assert one_batch["mi_split"] == pytest.approx(one_batch["mi"], abs=1e-5)  # fp64 vs fp32
    assert r["feat_var"] >= 0
    # how long the evaluated checkpoint was trained, as fairseq recorded it
    state = torch.load(vae / "checkpoint_best.pt", map_location="cpu", weights_only=False)
    assert r["updates"] == state["optimizer_history"][-1]["num_updates"] > 0
    assert r["epochs"] == state["extra_state"]["train_iterator"]["epoch"] - 1
    assert r["epochs"] in (1, 2)  # the fixture trains two epochs; the best is saved at an end
    assert r["train_seconds"] == pytest.approx(state["extra_state"]["previous_training_time"],
                                               abs=0.05) and r["train_seconds"] > 0


def test_seqvae_eval_lm_matches_fairseq_validate(trained_vae, lm_checkpoint, tmp_path):
    """For an LSTM LM both compute the exact NLL; fairseq-validate logs it in bits."""
    (ours,) = json_results(seqvae_eval(trained_vae.data, "--path", lm_checkpoint, "-k", 3,
                                       "--json", cwd=tmp_path))
    proc = cu.run([cu.console_script("fairseq-validate"),
                   *cu.validate_args(trained_vae.data, lm_checkpoint, "--valid-subset", "test")],
                  tmp_path)
    (theirs,) = cu.json_log(proc.stdout + proc.stderr, "test")
    assert "mi" not in ours and "mi_split" not in ours and ours["kl"] == 0
    assert ours["ppl"] == pytest.approx(theirs["test_ppl"], abs=0.006)
    assert ours["iw_nll"] == pytest.approx(theirs["test_elbo"], abs=6e-4)  # nats/sentence
    assert ours["elbo"] == pytest.approx(ours["iw_nll"], abs=1e-9)


def test_seqvae_eval_max_sentences_and_bf16(trained_vae, tmp_path):
    (r,) = json_results(seqvae_eval(trained_vae.data, "--path", trained_vae.save_dir,
                                    "-k", 2, "--max-sentences", 7, "--json", cwd=tmp_path))
    (bf16,) = json_results(seqvae_eval(trained_vae.data, "--path", trained_vae.save_dir,
                                       "-k", 2, "--max-sentences", 7, "--json",
                                       "--precision", "bf16", cwd=tmp_path))
    assert (r["precision"], bf16["precision"]) == ("fp32", "bf16")
    assert bf16["iw_nll"] == pytest.approx(r["iw_nll"], abs=0.05)
    assert r["sentences"] == 7
    assert r["tokens"] == sum(len(line.split()) + 1 for line in trained_vae.test_lines[:7])


def test_seqvae_eval_resume_continues_a_stopped_evaluation(trained_vae, tmp_path):
    """--resume: an evaluation killed mid-way continues from its state file and gives
    the uninterrupted result; other settings are refused; the file goes at the end."""
    (tmp_path / "ck").mkdir()
    checkpoint = tmp_path / "ck" / "checkpoint_best.pt"
    shutil.copy(trained_vae.save_dir / "checkpoint_best.pt", checkpoint)
    state = tmp_path / "ck" / "checkpoint_best.eval-state.pt"
    args = [trained_vae.data, "--path", checkpoint, "-k", 3000, "--batch-size", 1, "--json",
            "--resume"]
    whole = seqvae_eval(*args, cwd=tmp_path)
    assert "30 of 30 sentences" in whole.stderr  # progress in the log, without a terminal
    assert not state.exists()

    proc = subprocess.Popen([cu.console_script("seqvae-eval"), *map(str, args)], cwd=tmp_path,
                            env=cu._env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + cu.DEFAULT_TIMEOUT
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.001)
    proc.kill()
    proc.wait()
    done = torch.load(state, weights_only=True)["sentences"]
    assert 0 < done < 30, "the evaluation was not stopped mid-way"

    other = seqvae_eval(*args[:4], 100, *args[5:], cwd=tmp_path, expect_ok=False)
    assert "holds a partial evaluation with other settings" in other.stderr
    assert "k: 3000 there, 100 now" in other.stderr and "Traceback" not in other.stderr

    resumed = seqvae_eval(*args, cwd=tmp_path)
    assert f"resuming after {done} of 30 sentences" in resumed.stderr
    (a,), (b,) = json_results(whole), json_results(resumed)
    assert b.pop("resumed_after_sentences") == done
    assert {k: v for k, v in a.items() if k != "seconds"} == {
        k: v for k, v in b.items() if k != "seconds"}
    assert not state.exists()


def test_seqvae_eval_bad_input(trained_vae, tmp_path):
    data, ck = trained_vae.data, trained_vae.save_dir
    cases = [
        (["--path", tmp_path / "nowhere"], "checkpoint not found"),
        (["--path", ck, "-k", 0], "-k must be at least 1"),
        (["--path", ck, "--split", "nosuch"], "split 'nosuch' not found"),
    ]
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("not a checkpoint")
    cases.append((["--path", bogus], "cannot read checkpoint"))
    for args, message in cases:
        proc = seqvae_eval(data, *args, cwd=tmp_path, expect_ok=False)
        assert message in proc.stderr, (args, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, (args, proc.stderr[-2000:])


def test_seqvae_eval_other_dictionary(trained_vae, tmp_path):
    """Data binarized with another dict.txt is refused, not silently scored."""
    cu.write_lines(tmp_path / "test.txt", cu.synthetic_sentences(20, seed=9, prefix="v",
                                                                 vocab_size=80))
    other = cu.preprocess(tmp_path / "bin", tmp_path, trainpref=tmp_path / "test.txt")
    os.rename(other / "train.bin", other / "test.bin")
    os.rename(other / "train.idx", other / "test.idx")
    proc = seqvae_eval(other, "--path", trained_vae.save_dir, cwd=tmp_path, expect_ok=False)
    assert "dictionary mismatch" in proc.stderr
    assert "Traceback" not in proc.stderr
