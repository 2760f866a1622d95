"""scripts/grad_norms.py: the encoder's and decoder's gradient norms of a trained checkpoint
add up to the whole model's, and what clipping their joint norm does to the decoder."""

import json
import math
import sys

import pytest
import torch

import cli_utils as cu

SCRIPT = cu.REPO / "scripts" / "grad_norms.py"
sys.path.insert(0, str(cu.REPO / "scripts"))
import grad_norms  # noqa: E402


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A VAE and an LSTM LM, each trained 4 updates on a synthetic corpus."""
    root = tmp_path_factory.mktemp("gradnorms")
    data = cu.binarized_synthetic(root, train=60, valid=10)
    for name, extra in (("vae", ()), ("lm", ("--latent-dim", "0"))):
        cu.train(data, root / name, "--max-update", "4", "--clip-norm", "5", *extra, cwd=root)
    return root


def run_json(path, *extra):
    proc = cu.run([sys.executable, SCRIPT, path, "--batches", "2", "--json", *extra], path.parent)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_halves_cover_the_whole_model(checkpoints):
    # every parameter belongs to one half: their norms make up the norm of all gradients
    from fairseq_seqvae.hub import load_checkpoint
    model, task, cfg, progress = load_checkpoint(str(checkpoints / "vae" / "checkpoint_last.pt"))
    task.load_dataset("train")
    criterion = task.build_criterion(cfg.criterion)
    sample = next(task.get_batch_iterator(dataset=task.dataset("train"), max_sentences=8)
                  .next_epoch_itr(shuffle=False))
    torch.manual_seed(0)
    norms = grad_norms.gradient_norms(model, task, criterion, sample, progress["updates"])
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    whole = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()
    sample_size = sample["ntokens"]  # the tests' runs average over tokens
    assert norms["encoder"] > 0 and norms["decoder"] > 0
    assert math.hypot(norms["encoder"], norms["decoder"]) == pytest.approx(whole / sample_size,
                                                                           rel=1e-5)


def test_clipping_statistics_through_the_command(checkpoints):
    out = run_json(checkpoints / "vae")
    assert out["batches"] == 2 and out["clip_norm"] == 5  # the run's own --clip-norm
    assert out["whole_norm"] >= max(out["encoder_norm"], out["decoder_norm"])
    assert 0 <= out["clipped"] <= 1
    assert out["decoder_scale"] <= out["decoder_scale_alone"] <= 1
    tiny = run_json(checkpoints / "vae", "--clip-norm", "1e-9")  # every batch clipped
    assert tiny["clipped"] == 1 and tiny["decoder_scale"] < tiny["decoder_scale_alone"] < 1
    assert "clipped" not in run_json(checkpoints / "vae", "--clip-norm", "0")  # no clipping
    lm = run_json(checkpoints / "lm")  # no encoder to clip with
    assert lm["encoder_norm"] == 0 and lm["decoder_scale"] == lm["decoder_scale_alone"]
    proc = cu.run([sys.executable, SCRIPT, checkpoints / "vae", "--batches", "50"], checkpoints)
    assert "decoder step scale" in proc.stdout and "2 training batches" in proc.stdout
    assert "the training set has 2 batches, fewer than --batches 50" in proc.stderr


def test_names_a_missing_checkpoint(tmp_path):
    proc = cu.run_fails([sys.executable, SCRIPT, tmp_path / "nowhere"], tmp_path)
    assert "checkpoint not found" in proc.stderr
