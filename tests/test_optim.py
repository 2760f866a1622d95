"""``--optimizer encoder_decoder``: each half of the model follows its own update rule
exactly (against torch's Adam and SGD), through the real fairseq-train with the
authors' encoder options, with an exact resume and the encoder lr kept or scheduled."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cli_utils, package or not
import cli_utils as cu  # noqa: E402

from fairseq_seqvae.optim.encoder_decoder import EncoderDecoderRules  # noqa: E402

N = 3  # updates before the resume point, and after it
AUTHORS_ENCODER = ["--encoder-layers", 2, "--encoder-bidirectional", "--encoder-merge", "mean",
                   "--no-posterior-bias"]
SPLIT = ["--optimizer", "encoder_decoder", "--encoder-optimizer", "adam", "--encoder-lr", 0.02,
         "--decoder-optimizer", "sgd", "--lr", 0.5]


def _halves(model):
    return {half: [p for p in model.parameters() if p.param_group == half]
            for half in ("encoder", "decoder")}


def test_each_half_follows_its_rule_exactly(make_model, make_sentences, make_batch,
                                            make_criterion):
    """Four steps on real gradients: the encoder moves as under torch.optim.Adam, the
    decoder as under torch.optim.SGD, each with its own lr."""
    ours, ref = make_model(seed=1), make_model(seed=1)
    halves, ref_halves = _halves(ours), _halves(ref)
    assert halves["encoder"] and halves["decoder"]
    assert len(halves["encoder"]) + len(halves["decoder"]) == len(list(ours.parameters()))
    rules = EncoderDecoderRules([
        {"params": halves["encoder"], "half": "encoder", "rule": "adam", "lr": 0.03},
        {"params": halves["decoder"], "half": "decoder", "rule": "sgd", "lr": 0.7},
    ])
    adam = torch.optim.Adam(ref_halves["encoder"], lr=0.03)
    sgd = torch.optim.SGD(ref_halves["decoder"], lr=0.7)
    batch = make_batch(make_sentences([5, 3, 4], seed=2))
    criterion = make_criterion()
    for step in range(4):
        for model, optimizers in ((ours, [rules]), (ref, [adam, sgd])):
            torch.manual_seed(step)  # the same z noise for both
            for opt in optimizers:
                opt.zero_grad()
            criterion(model, batch)[0].backward()
            for opt in optimizers:
                opt.step()
        for p, q in zip(ours.parameters(), ref.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert not torch.equal(next(ours.parameters()), next(make_model(seed=1).parameters()))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return cu.binarized_synthetic(tmp_path_factory.mktemp("optim_corpus"), 300, 60)


def _lrs(checkpoint):
    groups = torch.load(checkpoint, weights_only=False)["last_optimizer_state"]["param_groups"]
    return {g["half"]: g["lr"] for g in groups}


def test_authors_setting_trains_and_resumes_exactly(data, tmp_path):
    """The authors' encoder with Adam for it and SGD for the decoder: resuming gives the
    same metrics and parameters as an uninterrupted run; Adam state exists for the
    encoder only; the encoder keeps its lr while the decoder's is logged."""
    flags = [*AUTHORS_ENCODER, *SPLIT, "--pooling", "max"]
    ck, straight = tmp_path / "ck", tmp_path / "straight"
    first = cu.train(data, ck, *flags, "--max-update", N, cwd=tmp_path)
    second = cu.train(data, ck, *flags, "--max-update", 2 * N, cwd=tmp_path)
    assert f"Loaded checkpoint {ck}/checkpoint_last.pt (epoch 1 @ {N} updates)" in second.stdout
    once = cu.train(data, straight, *flags, "--max-update", 2 * N, cwd=tmp_path)
    rows = {**cu.by_update(cu.json_log(first.stdout, "train_inner")),
            **cu.by_update(cu.json_log(second.stdout, "train_inner"))}
    ref = cu.by_update(cu.json_log(once.stdout, "train_inner"))
    assert sorted(rows) == sorted(ref) == list(range(1, 2 * N + 1))
    for k in rows:
        assert rows[k]["lr"] == pytest.approx(0.5)
        for key in ("loss", "rec", "kl", "gnorm"):
            assert rows[k][key] == ref[k][key], f"update {k}: {key} differs after resume"
    resumed = torch.load(ck / "checkpoint_last.pt", weights_only=False)
    theirs = torch.load(straight / "checkpoint_last.pt", weights_only=False)
    assert "encoder.to_posterior.bias" not in resumed["model"]
    for key in resumed["model"]:
        assert torch.equal(resumed["model"][key], theirs["model"][key]), key
    state = resumed["last_optimizer_state"]
    assert [(g["half"], g["rule"]) for g in state["param_groups"]] == [
        ("encoder", "adam"), ("decoder", "sgd")]
    enc_ids, dec_ids = (g["params"] for g in state["param_groups"])
    assert set(state["state"]) == set(enc_ids)  # SGD without momentum keeps no state
    assert all(state["state"][i]["step"] == 2 * N for i in enc_ids)
    assert _lrs(ck / "checkpoint_last.pt") == {"encoder": 0.02, "decoder": 0.5}


@pytest.mark.parametrize("follows", [False, True])
def test_encoder_lr_kept_or_scheduled(data, tmp_path, follows):
    """Under a schedule the decoder's lr changes; the encoder's stays at --encoder-lr,
    or with --encoder-lr-follows-schedule keeps its ratio to the decoder's."""
    flags = [*SPLIT, "--lr-scheduler", "inverse_sqrt", "--warmup-updates", 2,
             "--max-update", 2 * N] + (["--encoder-lr-follows-schedule"] if follows else [])
    cu.train(data, tmp_path / "ck", *flags, cwd=tmp_path)
    lrs = _lrs(tmp_path / "ck" / "checkpoint_last.pt")
    # inverse_sqrt after 2 N updates, 2 of warm-up
    assert lrs["decoder"] == pytest.approx(0.5 * (2 / (2 * N)) ** 0.5, rel=1e-6)
    expected = lrs["decoder"] * 0.02 / 0.5 if follows else 0.02
    assert lrs["encoder"] == pytest.approx(expected, rel=1e-6)


def test_resume_with_other_rules_is_refused(data, tmp_path):
    ck = tmp_path / "ck"
    cu.train(data, ck, *SPLIT, "--max-update", 2, cwd=tmp_path)
    proc = cu.run_fails([cu.console_script("fairseq-train"), *cu.train_args(
        data, ck, *SPLIT, "--encoder-optimizer", "sgd", "--max-update", 4)], tmp_path)
    assert "the checkpoint's update rules" in proc.stdout + proc.stderr
    assert "--reset-optimizer" in proc.stdout + proc.stderr


def test_authors_architecture(data, tmp_path):
    """seqvae_lstm_ptb_bienc: the PTB size with the authors' encoder; flags still win."""
    cfg = cu.train_config(data, tmp_path, "--arch", "seqvae_lstm_ptb_bienc").model
    assert (cfg.encoder_layers, cfg.encoder_bidirectional, cfg.encoder_merge,
            cfg.no_posterior_bias, cfg.encoder_hidden_dim, cfg.latent_dim) == (
        2, True, "mean", True, 256, 32)
    cfg = cu.train_config(data, tmp_path, "--arch", "seqvae_lstm_ptb_bienc",
                          "--encoder-merge", "concat").model
    assert cfg.encoder_merge == "concat"


def _optimizer_with_grads(data, tmp_path, *flags, wrapper=None):
    """The model of ``train_config(flags)``, gradients of norm 3 (encoder) and 4 (decoder),
    and its fairseq optimizer (or ``wrapper.build_optimizer``'s)."""
    from fairseq import optim, tasks
    cfg = cu.train_config(data, tmp_path, *SPLIT, *flags)
    model = tasks.setup_task(cfg.task).build_model(cfg.model)
    for half, norm in (("encoder", 3.0), ("decoder", 4.0)):
        params = _halves(model)[half]
        for p in params:
            p.grad = torch.full_like(p, norm / sum(q.numel() for q in params) ** 0.5)
    params = list(model.parameters())
    built = (wrapper.build_optimizer(cfg, params) if wrapper
             else optim.build_optimizer(cfg.optimizer, params))
    return cfg, model, built


def _norms(model):
    return {half: torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ps])).item()
            for half, ps in _halves(model).items()}


@pytest.mark.parametrize("per_half", [False, True])
def test_clipping_joint_or_per_half(data, tmp_path, per_half):
    """Joint clipping scales both halves by clip / 5; --clip-norm-per-half brings each
    half to the clip norm by itself. Either way the joint norm, 5, is returned (gnorm)."""
    flags = ["--clip-norm", "2"] + (["--clip-norm-per-half"] if per_half else [])
    cfg, model, optimizer = _optimizer_with_grads(data, tmp_path, *flags)
    assert optimizer.clip_grad_norm(cfg.optimization.clip_norm).item() == pytest.approx(5.0)
    expected = {"encoder": 2.0, "decoder": 2.0} if per_half else {"encoder": 1.2, "decoder": 1.6}
    assert _norms(model) == pytest.approx(expected, rel=1e-5)


def test_clipping_per_half_trains_and_refuses_fp16_wrappers(data, tmp_path):
    from fairseq import optim
    proc = cu.train(data, tmp_path / "ck", *SPLIT, "--clip-norm-per-half", "--clip-norm", "0.5",
                    "--max-update", 3, cwd=tmp_path)
    rows = cu.json_log(proc.stdout, "train_inner")
    assert [r["num_updates"] for r in rows] == [1, 2, 3] and all(r["gnorm"] > 0 for r in rows)
    cfg, model, wrapped = _optimizer_with_grads(data, tmp_path, "--clip-norm-per-half", "--bf16",
                                                "--clip-norm", "1",
                                                "--fp16-no-flatten-grads",
                                                wrapper=optim.FP16Optimizer)
    wrapped.backward(sum(p.sum() for p in model.parameters()))  # its own gradient bookkeeping
    with pytest.raises(ValueError, match="use --amp"):
        wrapped.clip_grad_norm(cfg.optimization.clip_norm)
