"""Python interface to a trained sequence VAE, in the spirit of fairseq's hub
interface: load a checkpoint with its dictionary, then encode, sample, reconstruct,
interpolate and score sentences (with ``fairseq_seqvae.decoding`` and
``fairseq_seqvae.scoring``). ``seqvae-eval`` and ``seqvae-generate`` are built on it.

Example::

    from fairseq_seqvae import SeqVAE
    vae = SeqVAE.from_pretrained("checkpoints/max", "data-bin/ptb")
    mean, logvar = vae.encode(["the market fell sharply"])
    print(vae.sample(3))
    print(vae.interpolate("the market fell", "prices rose again", steps=5))
    print(vae.score(["the market fell sharply"], k=100))   # -log p(x), nats
"""

import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from fairseq import checkpoint_utils
from torch import Tensor

from fairseq_seqvae import decoding, scoring
from fairseq_seqvae.data.sentence_dataset import SentenceDataset
from fairseq_seqvae.modules.gaussian import reparameterize
from fairseq_seqvae.scoring import move_to

logger = logging.getLogger(__name__)

TASK_NAME = "seqvae_language_modeling"
TOKENIZERS = ("none", "moses")


def resolve_checkpoint(checkpoint: str, checkpoint_file: str = "checkpoint_best.pt") -> str:
    """A checkpoint file, or ``checkpoint_file`` inside a directory; clear error if absent."""
    path = os.path.join(checkpoint, checkpoint_file) if os.path.isdir(checkpoint) else checkpoint
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"checkpoint not found: {path}; pass a checkpoint file or the --save-dir of "
            f"a fairseq-train run with --task {TASK_NAME}"
        )
    return path


def load_checkpoint(path: str, data_dir: Optional[str] = None):
    """Loads a seqvae checkpoint and sets up its task on ``data_dir`` (default: the
    data directory recorded in the checkpoint).

    Returns:
        (model in eval mode, task, cfg, how far it was trained: {"updates": optimizer
        updates, "epochs": whole passes over the training data done when it was saved,
        "train_seconds": fairseq's cumulative training wall time})
    """
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(path)
    except Exception as err:  # a truncated or foreign file: say which one
        raise ValueError(f"cannot read checkpoint {path}: {err}") from err
    cfg = state.get("cfg")
    task_name = cfg.task.get("_name") if cfg is not None and "task" in cfg else None
    if task_name != TASK_NAME:
        raise ValueError(
            f"{path} was not trained with --task {TASK_NAME} (task: {task_name}); "
            f"fairseq_seqvae can only load its own checkpoints"
        )
    data_dir = data_dir or cfg.task.data
    if not data_dir or not os.path.isfile(os.path.join(data_dir.split(":")[0], "dict.txt")):
        raise FileNotFoundError(
            f"no dict.txt in data directory {data_dir!r}: pass the fairseq-preprocess "
            f"output directory the checkpoint {path} was trained with"
        )
    checkpoint_utils.overwrite_args_by_name(cfg, {"data": data_dir})
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], state=state)
    progress = {
        "updates": state["optimizer_history"][-1]["num_updates"],
        # fairseq stores the epoch to resume in: the next one after a finished epoch
        "epochs": state["extra_state"].get("train_iterator", {}).get("epoch", 1) - 1,
        "train_seconds": training_seconds(state),
    }
    return models[0].eval(), task, cfg, progress


def training_seconds(state: Dict) -> float:
    """fairseq's cumulative training wall time of a loaded checkpoint."""
    return round(state["extra_state"].get("previous_training_time", 0.0), 1)


def pretrain_seconds(cfg, path: str) -> Optional[float]:
    """The training wall time of the checkpoint that the model of ``path`` (config ``cfg``)
    took its encoder from with --init-encoder-from (ae-free-bits's autoencoder), part of
    the run's cost; None if it was not pretrained, or (with a warning) if that checkpoint
    is gone. Reads the whole checkpoint, so only ``seqvae-eval`` asks."""
    pretrained = cfg.model.get("init_encoder_from")
    if not pretrained:
        return None
    if not os.path.isfile(pretrained):
        logger.warning(f"{path}: the checkpoint its encoder started from, {pretrained}, "
                       f"was not found, so its pretraining time is not counted")
        return None
    return training_seconds(checkpoint_utils.load_checkpoint_to_cpu(pretrained))


class SeqVAE(nn.Module):
    """A trained ``seqvae_lstm`` model with its dictionary (and optional Moses
    tokenizer), taking and returning plain sentences."""

    def __init__(self, model, task, cfg=None, tokenizer: str = "none", lang: str = "en",
                 progress: Optional[Dict] = None):
        super().__init__()
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
        self.model = model.eval()
        self.task = task
        self.cfg = cfg
        self.progress = progress or {}  # from_pretrained: updates, epochs and train_seconds
        self.dictionary = task.source_dictionary
        self.tokenizer = None
        self.detokenizer = None
        if tokenizer == "moses":
            from sacremoses import MosesDetokenizer, MosesTokenizer

            self.tokenizer = MosesTokenizer(lang)
            self.detokenizer = MosesDetokenizer(lang)
        # the number of input words mapped to <unk> by the last call that read sentences
        self.num_oov = 0

    @classmethod
    def from_pretrained(
        cls,
        checkpoint: str,
        data_dir: Optional[str] = None,
        checkpoint_file: str = "checkpoint_best.pt",
        tokenizer: str = "none",
        lang: str = "en",
        device: Optional[str] = None,
    ) -> "SeqVAE":
        """
        Args:
            checkpoint: a ``--save-dir`` (then ``checkpoint_file`` in it) or a .pt file
            data_dir: fairseq-preprocess output holding the training dict.txt
                (default: the data directory stored in the checkpoint)
            tokenizer: "moses" if the training text was Moses-tokenized (input is then
                tokenized and output detokenized with sacremoses); default "none"
            device: "cpu", "cuda", ... (default: CUDA when available)
        """
        path = resolve_checkpoint(checkpoint, checkpoint_file)
        model, task, cfg, progress = load_checkpoint(path, data_dir)
        vae = cls(model, task, cfg, tokenizer=tokenizer, lang=lang, progress=progress)
        return vae.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    @property
    def device(self) -> torch.device:
        return self.model.decoder.output_projection.weight.device

    @property
    def latent_dim(self) -> int:
        return self.model.encoder.latent_dim

    # ---- text <-> token ids ------------------------------------------------------

    def tokenize(self, sentences: Sequence[str]) -> List[Tensor]:
        """Sentences -> word ids + EOS. Out-of-vocabulary words become <unk> and are
        counted in ``self.num_oov``; an empty sentence is an error."""
        if isinstance(sentences, str):
            raise TypeError("pass a list of sentences, not a single string")
        tokens, num_oov = [], 0
        for i, sentence in enumerate(sentences):
            if self.tokenizer is not None:
                sentence = self.tokenizer.tokenize(sentence, return_str=True, escape=False)
            words = sentence.split()
            if not words:
                raise ValueError(f"sentence {i + 1} is empty: give at least one word")
            num_oov += sum(1 for w in words if w not in self.dictionary.indices)
            ids = [self.dictionary.index(w) for w in words] + [self.dictionary.eos()]
            tokens.append(torch.tensor(ids, dtype=torch.long))
        if num_oov:
            logger.warning(f"{num_oov} out-of-vocabulary word(s) mapped to <unk>")
        self.num_oov = num_oov
        return tokens

    def detokenize(self, tokens: Tensor) -> str:
        """Word ids (EOS and what follows dropped) -> a sentence."""
        words = []
        for t in tokens.tolist():
            if t == self.dictionary.eos():
                break
            words.append(self.dictionary[t])
        if self.detokenizer is not None:
            return self.detokenizer.detokenize(words)
        return " ".join(words)

    def batches(self, tokens: List[Tensor], max_sentences: int = 64):
        """Length-sorted, collated batches on this device; each has ``id`` (the
        position in ``tokens``) so results can be put back in input order."""
        dataset = SentenceDataset(tokens, [t.numel() for t in tokens], self.dictionary,
                                  shuffle=False, name="input")
        order = dataset.ordered_indices()
        for start in range(0, len(order), max_sentences):
            batch = dataset.collater([dataset[i] for i in order[start:start + max_sentences]])
            yield move_to(batch, self.device)

    # ---- the latent space --------------------------------------------------------

    @torch.no_grad()
    def encode(self, sentences: Sequence[str], max_sentences: int = 64) -> Tuple[Tensor, Tensor]:
        """Posterior parameters of each sentence.

        Returns:
            (mean, logvar), each N x Z on this device, in input order
        """
        self.require_latent("encode")
        tokens = self.tokenize(sentences)
        mean = torch.empty(len(tokens), self.latent_dim, device=self.device)
        logvar = torch.empty_like(mean)
        for batch in self.batches(tokens, max_sentences):
            out = self.model.encoder(**without_decoder_input(batch["net_input"]), sample_z=False)
            mean[batch["id"]] = out["mean"].float()
            logvar[batch["id"]] = out["logvar"].float()
        return mean, logvar

    @torch.no_grad()
    def latent_codes(self, sentences: Sequence[str], use_mean: bool = True,
                     max_sentences: int = 64) -> Tensor:
        """The posterior mean of each sentence, or (``use_mean=False``) one sample
        z ~ q(z|x) per sentence.

        Returns:
            N x Z on this device, in input order
        """
        mean, logvar = self.encode(sentences, max_sentences)
        return mean if use_mean else reparameterize(mean, logvar)

    @torch.no_grad()
    def interpolation_codes(self, pairs: Sequence[Tuple[str, str]], steps: int = 5,
                            max_sentences: int = 64) -> Tensor:
        """For each pair (a, b), ``steps`` points evenly spaced on the line from the
        posterior mean of a to that of b, both ends included.

        Returns:
            P x S x Z on this device
        """
        if steps < 2:
            raise ValueError(f"steps must be at least 2 (both ends), got {steps}")
        if any(isinstance(p, str) or len(p) != 2 for p in pairs):
            raise ValueError("pairs must be a list of (sentence, sentence) pairs")
        mean, _ = self.encode([s for pair in pairs for s in pair], max_sentences)
        mean = mean.view(len(pairs), 2, self.latent_dim)  # P x 2 x Z
        t = torch.linspace(0, 1, steps, device=self.device).view(1, steps, 1)
        return (1 - t) * mean[:, :1] + t * mean[:, 1:]  # P x S x Z

    def decode(self, z: Tensor, **decode_args) -> List[str]:
        """One sentence per row of ``z`` (N x Z); ``decode_args`` go to
        ``fairseq_seqvae.decoding.decode`` (strategy, beam, sampling_topk/topp,
        temperature, lenpen, max_len, batch_size)."""
        hypos = decoding.decode(self.model, z.to(self.device), **decode_args)
        return [self.detokenize(h) for h in hypos]

    def sample(self, n: int, **decode_args) -> List[str]:
        """Decodes ``n`` latent codes drawn from the prior N(0, I)."""
        return self.decode(torch.randn(n, self.latent_dim, device=self.device), **decode_args)

    def reconstruct(self, sentences: Sequence[str], use_mean: bool = True,
                    **decode_args) -> List[str]:
        """Encodes, then decodes from the posterior mean (or one posterior sample)."""
        return self.decode(self.latent_codes(sentences, use_mean), **decode_args)

    def interpolate(self, a: str, b: str, steps: int = 5, **decode_args) -> List[str]:
        """Decodes ``steps`` points evenly spaced on the line from the posterior mean
        of ``a`` to that of ``b`` (both ends included)."""
        return self.decode(self.interpolation_codes([(a, b)], steps)[0], **decode_args)

    # ---- likelihood --------------------------------------------------------------

    @torch.no_grad()
    def score(self, sentences: Sequence[str], k: int = scoring.DEFAULT_K,
              max_sentences: int = 64,
              max_tokens: int = scoring.DEFAULT_MAX_TOKENS) -> Tensor:
        """Importance-weighted estimate of -log p(x) per sentence, in nats, with ``k``
        posterior samples (Burda et al. 2016; exact for an LSTM LM). ``max_tokens``
        bounds the decoder positions per forward pass (memory).

        Returns:
            N, float64, in input order
        """
        tokens = self.tokenize(sentences)
        nll = torch.empty(len(tokens), dtype=torch.float64)
        for batch in self.batches(tokens, max_sentences):
            log_px = scoring.iw_log_likelihood(self.model, batch, k=k, max_tokens=max_tokens)
            nll[batch["id"].cpu()] = -log_px.cpu()
        return nll

    def require_latent(self, what: str):
        if self.latent_dim == 0:
            raise ValueError(f"{what} needs a latent variable; this checkpoint is an "
                             f"LSTM language model (--latent-dim 0)")


def without_decoder_input(net_input):
    return {"src_tokens": net_input["src_tokens"], "src_lengths": net_input["src_lengths"]}
