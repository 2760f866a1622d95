"""Shared test fixtures: a tiny dictionary, a tiny real model, batches made by the
real ``SentenceDataset.collater``, the real criterion, and (session-wide) small
checkpoints trained through the real CLIs."""

import dataclasses
import os
import sys
import types

import pytest
import torch

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
for path in (REPO_ROOT, TESTS_DIR):  # the package, and cli_utils
    if path not in sys.path:
        sys.path.insert(0, path)

from fairseq.data import Dictionary  # noqa: E402

import cli_utils as cu  # noqa: E402

import fairseq_seqvae  # noqa: E402,F401  (registers model, criterion, task)
from fairseq_seqvae.criterions.seqvae_elbo import SeqVAEELBOCriterion  # noqa: E402
from fairseq_seqvae.data.sentence_dataset import SentenceDataset  # noqa: E402
from fairseq_seqvae.models.seqvae_lstm import SeqVAELSTMConfig, SeqVAELSTMModel  # noqa: E402

WORDS = [f"w{i}" for i in range(20)]

# tiny sizes; dropout off so that eval and train forward passes only differ by z sampling
TINY = dict(
    encoder_embed_dim=8,
    encoder_hidden_dim=8,
    decoder_embed_dim=8,
    decoder_hidden_dim=8,
    latent_dim=4,
    decoder_dropout_in=0.0,
    decoder_dropout_out=0.0,
    init_scale=0.1,
)


class FakeTask:
    """The parts of a FairseqTask that build_model and the criterion read."""

    def __init__(self, dictionary):
        self.dictionary = dictionary

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary


def make_dictionary(words=WORDS):
    d = Dictionary()
    for w in words:
        d.add_symbol(w)
    d.finalize(padding_factor=1)
    return d


def build_model(dictionary, **overrides):
    """A tiny model through the real ``SeqVAELSTMModel.build_model``."""
    cfg = dataclasses.replace(SeqVAELSTMConfig(), **{**TINY, **overrides})
    return SeqVAELSTMModel.build_model(cfg, FakeTask(dictionary))


def build_criterion(dictionary, **overrides):
    kw = dict(
        kl_schedule="constant",
        kl_start=0.0,
        kl_max=1.0,
        kl_warmup_updates=100,
        kl_cycle_updates=100,
        kl_hold_updates=0,
        kl_cycle_ratio=0.5,
        kl_num_cycles=0,
        free_bits=0.0,
        free_bits_mode="batch",
        sentence_avg=False,
    )
    kw.update(overrides)
    return SeqVAEELBOCriterion(FakeTask(dictionary), **kw)


def random_sentences(dictionary, lengths, seed=0):
    """Word ids (no specials) + EOS, one tensor per requested word count."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        words = torch.randint(dictionary.nspecial, len(dictionary), (n,), generator=g)
        out.append(torch.cat([words, torch.tensor([dictionary.eos()])]))
    return out


def sentence_dataset(dictionary, sentences, **kwargs):
    sizes = [s.numel() for s in sentences]
    return SentenceDataset(sentences, sizes, dictionary, shuffle=False, **kwargs)


def collate(dictionary, sentences):
    """A batch of all ``sentences`` (in order) through the real collater."""
    ds = sentence_dataset(dictionary, sentences)
    return ds.collater([ds[i] for i in range(len(ds))])


def pad_batch(sample, extra, pad):
    """The same batch with ``extra`` pad columns appended to every B x T tensor."""

    def widen(t):
        return torch.cat([t, t.new_full((t.size(0), extra), pad)], dim=1)

    net = sample["net_input"]
    return {
        **sample,
        "net_input": {
            "src_tokens": widen(net["src_tokens"]),
            "src_lengths": net["src_lengths"].clone(),
            "prev_output_tokens": widen(net["prev_output_tokens"]),
        },
        "target": widen(sample["target"]),
    }


# Tests use the helpers through these fixtures (never ``from conftest import``), so they
# keep working whether or not tests/ becomes a package.


@pytest.fixture
def dictionary():
    """20 words + fairseq's 4 specials (bos 0, pad 1, eos 2, unk 3)."""
    return make_dictionary()


@pytest.fixture
def task(dictionary):
    return FakeTask(dictionary)


@pytest.fixture
def make_model(dictionary):
    """``make_model(seed=0, dictionary=None, **cfg_overrides)``: a tiny model, seeded,
    over the ``dictionary`` fixture unless another dictionary is given."""
    default = dictionary

    def make(seed=0, dictionary=None, **overrides):
        torch.manual_seed(seed)
        return build_model(dictionary if dictionary is not None else default, **overrides)

    return make


@pytest.fixture
def make_criterion(dictionary):
    """``make_criterion(**criterion_overrides)``: the real criterion."""
    return lambda **overrides: build_criterion(dictionary, **overrides)


@pytest.fixture
def make_sentences(dictionary):
    """``make_sentences(word_counts, seed=0)``: list of 1-D tensors, words + EOS."""
    return lambda lengths, seed=0: random_sentences(dictionary, lengths, seed)


@pytest.fixture
def make_batch(dictionary):
    """``make_batch(sentences)``: a sample from the real ``SentenceDataset.collater``."""
    return lambda sentences: collate(dictionary, sentences)


@pytest.fixture
def append_pad(dictionary):
    """``append_pad(sample, extra)``: the same sample with ``extra`` pad columns."""
    return lambda sample, extra: pad_batch(sample, extra, dictionary.pad())


# --- a trained checkpoint, for the evaluation / generation / hub tests -------------


@pytest.fixture(scope="session")
def trained_vae(tmp_path_factory):
    """A tiny max-pooled VAE trained for two epochs through the real fairseq CLIs on a
    synthetic corpus with train/valid/test splits.

    Returns a namespace: ``data`` (binarized dir), ``save_dir`` (holds
    checkpoint_best.pt / checkpoint_last.pt), ``test_lines`` (raw test sentences).
    """
    root = tmp_path_factory.mktemp("trained_vae")
    splits = {"train": (400, 11), "valid": (40, 12), "test": (30, 13)}
    lines = {}
    for split, (n, seed) in splits.items():
        lines[split] = cu.synthetic_sentences(n, seed=seed)
        cu.write_lines(root / f"{split}.txt", lines[split])
    data = root / "bin"
    cu.run([cu.console_script("fairseq-preprocess"), "--only-source", "--destdir", data,
            "--workers", "1", "--trainpref", root / "train.txt",
            "--validpref", root / "valid.txt", "--testpref", root / "test.txt"], root)
    save_dir = root / "ck"
    cu.train(data, save_dir, "--max-epoch", 2, "--no-epoch-checkpoints", cwd=root)
    return types.SimpleNamespace(data=data, save_dir=save_dir, test_lines=lines["test"])


@pytest.fixture(scope="session")
def trained_lm(trained_vae, tmp_path_factory):
    """An LSTM language model (--latent-dim 0) trained one epoch on ``trained_vae``'s
    data: the same namespace, with its own ``save_dir``."""
    root = tmp_path_factory.mktemp("trained_lm")
    save_dir = root / "ck"
    cu.train(trained_vae.data, save_dir, "--max-epoch", 1, "--no-epoch-checkpoints",
             "--latent-dim", 0, cwd=root)
    return types.SimpleNamespace(data=trained_vae.data, save_dir=save_dir,
                                 test_lines=trained_vae.test_lines)
