"""The Python API (``from fairseq_seqvae import SeqVAE``): loading, encoding, scoring,
bad input, and the README's snippet run as a user would run it."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cli_utils, package or not
import cli_utils as cu  # noqa: E402

from fairseq_seqvae import SeqVAE  # noqa: E402


@pytest.fixture(scope="module")
def vae(trained_vae):
    return SeqVAE.from_pretrained(str(trained_vae.save_dir), str(trained_vae.data), device="cpu")


def test_from_pretrained_dir_file_and_stored_data_dir(trained_vae, vae):
    by_file = SeqVAE.from_pretrained(str(trained_vae.save_dir / "checkpoint_last.pt"))
    assert by_file.latent_dim == vae.latent_dim == 4
    assert by_file.dictionary.symbols == vae.dictionary.symbols  # data dir from the checkpoint
    assert vae.device == torch.device("cpu")


def test_encode_matches_the_model_and_keeps_input_order(trained_vae, vae):
    lines = trained_vae.test_lines[:7]
    mean, logvar = vae.encode(lines)
    assert mean.shape == logvar.shape == (7, 4)
    back_mean, back_logvar = vae.encode(lines[::-1])
    torch.testing.assert_close(back_mean.flip(0), mean)
    torch.testing.assert_close(back_logvar.flip(0), logvar)
    # one sentence alone, straight through the encoder
    ids = torch.tensor([[vae.dictionary.index(w) for w in lines[3].split()]
                        + [vae.dictionary.eos()]])
    with torch.no_grad():
        out = vae.model.encoder(ids, torch.tensor([ids.size(1)]), sample_z=False)
    torch.testing.assert_close(out["mean"][0], mean[3])


def test_score_of_a_language_model_is_exact_and_matches_seqvae_eval(trained_lm, tmp_path):
    lm = SeqVAE.from_pretrained(str(trained_lm.save_dir), str(trained_lm.data), device="cpu")
    lines = trained_lm.test_lines
    scores = lm.score(lines, k=3)
    assert scores.shape == (len(lines),) and (scores > 0).all()
    torch.testing.assert_close(lm.score(lines[::-1], k=1).flip(0), scores)
    proc = cu.run([cu.console_script("seqvae-eval"), trained_lm.data, "--path",
                   trained_lm.save_dir, "-k", 1, "--json"], tmp_path)
    (result,) = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert scores.mean().item() == pytest.approx(result["iw_nll"], abs=1e-6)
    with pytest.raises(ValueError, match="needs a latent variable"):
        lm.encode(lines[:1])


def test_score_of_a_vae_is_an_upper_bound_estimate(trained_vae, vae):
    lines = trained_vae.test_lines[:10]
    torch.manual_seed(0)
    scores = vae.score(lines, k=50)
    torch.manual_seed(0)
    one = vae.score(lines, k=1)  # -ELBO, one sample: noisier and (on average) larger
    assert scores.shape == (10,) and torch.isfinite(scores).all()
    assert one.mean() >= scores.mean() - 0.05


def test_score_defaults_are_seqvae_eval_defaults():
    import inspect

    from fairseq_seqvae import scoring

    params = inspect.signature(SeqVAE.score).parameters
    assert params["k"].default == scoring.DEFAULT_K
    assert params["max_tokens"].default == scoring.DEFAULT_MAX_TOKENS


def test_oov_words_are_mapped_to_unk_and_counted(vae):
    tokens = vae.tokenize(["w1 zzz w2 qqq", "w3 <unk>"])
    assert vae.num_oov == 2  # a literal <unk> in the input is not out of vocabulary
    assert tokens[0].tolist()[1] == vae.dictionary.unk()
    assert tokens[0].tolist()[-1] == vae.dictionary.eos()


def test_bad_input(trained_vae, vae, tmp_path):
    with pytest.raises(ValueError, match="sentence 2 is empty"):
        vae.encode(["w1 w2", "   "])
    with pytest.raises(TypeError, match="list of sentences"):
        vae.score("w1 w2")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        SeqVAE.from_pretrained(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no dict.txt"):
        SeqVAE.from_pretrained(str(trained_vae.save_dir), str(tmp_path))
    (tmp_path / "dict.txt").write_text("".join(f"x{i} 1\n" for i in range(60)))
    with pytest.raises(ValueError, match="dictionary mismatch"):
        SeqVAE.from_pretrained(str(trained_vae.save_dir), str(tmp_path))


def readme_snippet() -> str:
    """The first python code block of the README's "Python API" section."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_snippet_runs(trained_vae, tmp_path):
    """The README's snippet, run as a script, against a trained checkpoint placed where
    the README says (the quick start's output folders)."""
    code = readme_snippet()
    # the folders that `bash scripts/quickstart.sh` creates
    (tmp_path / "quickstart-out").mkdir()
    os.symlink(trained_vae.save_dir, tmp_path / "quickstart-out" / "max")
    os.symlink(trained_vae.data, tmp_path / "quickstart-out" / "bin")
    (tmp_path / "snippet.py").write_text(code)
    proc = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "torch.Size([2, 4])" in out  # encode: 2 sentences x latent 4
    assert len(out.splitlines()) >= 4, out
