"""Importance-weighted likelihood and the split statistics of a sequence VAE.

He et al. (2019), "Lagging Inference Networks and Posterior Collapse in Variational
Autoencoders", defined the protocol text-VAE papers report, including Long, Cao &
Cheung (2019):

| metric    | unit           | definition                                                     |
|-----------|----------------|----------------------------------------------------------------|
| iw_nll    | nats/sentence  | -log (1/k sum_i p(x, z_i) / q(z_i|x)), z_i ~ q(z|x): the        |
|           |                | importance-weighted estimate of -log p(x), k samples (500)     |
| ppl       | -              | exp(total iw_nll / total predicted tokens), tokens = words +   |
|           |                | EOS (BOS is not predicted)                                     |
| rec       | nats/sentence  | -E_q[log p(x|z)], averaged over the same k samples             |
| kl        | nats/sentence  | KL(q(z|x) || N(0, I)), analytic                                |
| elbo      | nats/sentence  | rec + kl, the negative ELBO (>= iw_nll up to sampling noise)  |
| elbo_ppl  | -              | exp(total elbo / total tokens): the ELBO's perplexity bound    |
| mi        | nats           | He et al.'s estimate of I(x; z), q(z) approximated by the      |
|           |                | posteriors of a minibatch (--batch-size, default 32); batches  |
|           |                | are consecutive sentences in length order, as in the reference;|
|           |                | averaged over the k samples (He et al. draw one: same          |
|           |                | expectation, in [0, log batch size], less noise)               |
| mi_split  | nats           | the same estimate with q(z) the mixture of the whole split's   |
|           |                | posteriors, one sample per sentence, as Li et al. (2019)'s     |
|           |                | code: in [0, log sentences]                                    |
| au        | count          | dimensions with Var_x(E_q[z_d]) >= --au-threshold (0.01)       |
| feat_var  | -              | encoder-feature dispersion: variance across the split of each  |
|           |                | pooled encoder feature (what the posterior is computed from),  |
|           |                | averaged over features; near 0 = every input looks alike       |

For an LSTM language model (``--latent-dim 0``) iw_nll is the exact NLL and the
latent metrics are absent. ``seqvae-eval`` (``fairseq_seqvae.cli.evaluate``) prints
these for checkpoints; ``SeqVAE.score`` uses ``iw_log_likelihood``.
"""

import math
import sys
from typing import Callable, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from fairseq import utils

from fairseq_seqvae.modules.gaussian import (
    AU_THRESHOLD,
    active_units,
    gaussian_kl,
    gaussian_log_density,
    mutual_information,
)

DEFAULT_K = 500
DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_TOKENS = 40000
# logits computed at once (rows x vocabulary): small enough to stay in cache, which on
# CPU makes the projection about 1.4x faster than rows of 8192 (scripts/benchmark_eval.py)
LOGITS_ELEMENTS = 5_000_000


PRECISIONS = ("fp32", "bf16")


def decoder_autocast(device: torch.device, precision: str):
    """The context the decoder runs in: nothing for fp32; for bf16, autocast, so that
    the LSTM and the output projection compute in bfloat16 (the log-softmax computes in
    fp32 and rounds each token's log-probability to bf16; every sum is float64)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def sequence_log_prob(model, prev_output_tokens: Tensor, target: Tensor, z: Tensor,
                      precision: str = "fp32") -> Tensor:
    """log p(x | z) of each sequence under the decoder, teacher-forced.

    Args:
        prev_output_tokens, target: N x T (BOS + words, words + EOS; right-padded)
        z: N x Z
        precision: ``fp32``, or ``bf16`` for the decoder's matrix products (see
            ``decoder_autocast``)
    Returns:
        N, float64
    """
    # one autocast region for the whole pass, so that the weights are cast to bf16 once
    with decoder_autocast(z.device, precision):
        features, _ = model.decoder(prev_output_tokens, {"z": z}, features_only=True)  # N x T x H
        real = target.ne(model.decoder.padding_idx)  # N x T
        rows = real.nonzero()[:, 0]  # sequence of each real position
        features, target = features[real], target[real]  # P x H, P
        log_prob = torch.zeros(z.size(0), dtype=torch.float64, device=z.device)
        step = max(1, LOGITS_ELEMENTS // model.decoder.output_projection.out_features)
        for start in range(0, target.numel(), step):
            part = slice(start, start + step)
            logits = model.decoder.output_layer(features[part])  # rows x V
            # bf16 logits go to the log-softmax as they are: its kernel computes in fp32
            # and rounds each token's log-probability to bf16, about 3x faster on CPU than
            # a full-size fp32 copy and an fp32 log-softmax (docs/PERFORMANCE.md)
            with torch.autocast(z.device.type, enabled=False):
                nll = F.cross_entropy(logits, target[part], reduction="none")
            log_prob.index_add_(0, rows[part], -nll.double())
    return log_prob


@torch.no_grad()
def importance_weights(model, batch, k: int = DEFAULT_K, max_tokens: int = DEFAULT_MAX_TOKENS,
                       precision: str = "fp32"):
    """log p(x, z_i) - log q(z_i | x) for k samples z_i ~ q(z|x) of every sentence,
    decoded in chunks of at most ``max_tokens`` decoder positions, the decoder in
    ``precision`` (the encoder, the samples and the densities always in fp32/float64).

    Args:
        batch: a ``SentenceDataset`` batch (B sentences)
    Returns:
        dict with ``log_w`` and ``log_px_z`` (B x k, float64), the samples ``z``
        (B x k x Z), ``mean``, ``logvar`` (B x Z) and ``pooled`` (B x C, the
        encoder features)
    """
    if k < 1:
        raise ValueError(f"k (the number of importance samples) must be >= 1, got {k}")
    net = batch["net_input"]
    target = batch["target"]
    enc = model.encoder(net["src_tokens"], net["src_lengths"], sample_z=False)
    mean, logvar = enc["mean"].float(), enc["logvar"].float()  # B x Z
    bsz, dim = mean.shape
    if dim == 0:  # LSTM LM: log p(x) exactly, the same for every "sample"
        log_px = sequence_log_prob(model, net["prev_output_tokens"], target, mean, precision)
        log_px = log_px.unsqueeze(1).expand(bsz, k)
        return {"log_w": log_px, "log_px_z": log_px, "mean": mean, "logvar": logvar,
                "pooled": enc["pooled"]}

    # all noise drawn up front, so the result does not depend on the chunking
    eps = torch.randn(bsz, k, dim, device=mean.device)
    z_all = mean.unsqueeze(1) + eps * (0.5 * logvar).exp().unsqueeze(1)  # B x k x Z
    per_chunk = max(1, min(k, max_tokens // max(1, target.numel())))
    log_w, log_px_z = [], []
    for done in range(0, k, per_chunk):
        z = z_all[:, done:done + per_chunk]  # B x m x Z
        m = z.size(1)
        # every sentence repeated m times, sample-major within a sentence: (B * m) x T
        log_pxz = sequence_log_prob(
            model,
            net["prev_output_tokens"].repeat_interleave(m, dim=0),
            target.repeat_interleave(m, dim=0),
            z.reshape(bsz * m, dim),
            precision,
        ).view(bsz, m)
        zd = z.double()
        log_pz = gaussian_log_density(zd, torch.zeros_like(zd), torch.zeros_like(zd))  # B x m
        log_qz = gaussian_log_density(zd, mean.double().unsqueeze(1), logvar.double().unsqueeze(1))
        log_w.append(log_pxz + log_pz - log_qz)
        log_px_z.append(log_pxz)
    return {"log_w": torch.cat(log_w, 1), "log_px_z": torch.cat(log_px_z, 1),
            "z": z_all, "mean": mean, "logvar": logvar, "pooled": enc["pooled"]}


def iw_log_likelihood(model, batch, k: int = DEFAULT_K,
                      max_tokens: int = DEFAULT_MAX_TOKENS, precision: str = "fp32") -> Tensor:
    """Importance-weighted estimate of log p(x) per sentence: log-mean-exp of the k
    importance weights (Burda et al. 2016), in nats.

    Returns:
        B, float64
    """
    return log_mean_exp(importance_weights(model, batch, k, max_tokens, precision)["log_w"])


def log_mean_exp(log_w: Tensor) -> Tensor:
    """log (1/k sum_i exp(log_w_i)) over the last dimension, stably: B x k -> B."""
    return torch.logsumexp(log_w, dim=-1) - math.log(log_w.size(-1))


class SplitStats:
    """Sums over the batches of a split, turned into the metrics table by ``result``."""

    def __init__(self):
        self.sentences = self.tokens = 0
        self.nll = self.rec = self.kl = self.mi = 0.0
        self.mean_sum = self.mean_sq_sum = self.feat_sum = self.feat_sq_sum = 0.0
        self.posteriors = []  # (mean, logvar, first sample) of every batch, for mi_split

    def add(self, batch, weights):
        bsz = batch["nsentences"]
        self.sentences += bsz
        self.tokens += batch["ntokens"]
        self.nll -= log_mean_exp(weights["log_w"]).sum().item()
        self.rec -= weights["log_px_z"].mean(1).sum().item()
        mean, logvar = weights["mean"], weights["logvar"]
        if mean.size(1) == 0:
            return
        self.kl += gaussian_kl(mean, logvar).sum().item()
        self.mi += mutual_information(mean, logvar, weights["z"]).item() * bsz
        self.posteriors.append((mean.cpu(), logvar.cpu(), weights["z"][:, 0].cpu()))
        mean64, feat64 = mean.double(), weights["pooled"].double()
        self.mean_sum = self.mean_sum + mean64.sum(0)
        self.mean_sq_sum = self.mean_sq_sum + mean64.pow(2).sum(0)
        self.feat_sum = self.feat_sum + feat64.sum(0)
        self.feat_sq_sum = self.feat_sq_sum + feat64.pow(2).sum(0)

    def result(self, latent_dim: int, au_threshold: float) -> Dict[str, float]:
        n, elbo = self.sentences, self.rec + self.kl
        out = {
            "sentences": n,
            "tokens": self.tokens,
            "iw_nll": self.nll / n,
            "ppl": math.exp(self.nll / self.tokens),
            "rec": self.rec / n,
            "kl": self.kl / n,
            "elbo": elbo / n,
            "elbo_ppl": math.exp(elbo / self.tokens),
        }
        if latent_dim > 0:
            feat_var = (self.feat_sq_sum - self.feat_sum.pow(2) / n) / max(1, n - 1)
            mean, logvar, z = (torch.cat(parts).double() for parts in zip(*self.posteriors))
            out.update({
                "mi": self.mi / n,
                "mi_split": mutual_information(mean, logvar, z).item(),
                "au": active_units(self.mean_sum, self.mean_sq_sum, n, au_threshold),
                "feat_var": feat_var.mean().item(),
            })
        return out


def length_sorted_batches(dataset, batch_size: int):
    """Consecutive sentences in length order (ties in file order), ``batch_size`` at a
    time: deterministic, little padding, and the MI batches of He et al.'s code."""
    order = np.argsort(dataset.sizes, kind="stable")
    for start in range(0, len(order), batch_size):
        yield dataset.collater([dataset[i] for i in order[start:start + batch_size]])


@torch.no_grad()
def evaluate_dataset(model, dataset, k: int = DEFAULT_K, batch_size: int = DEFAULT_BATCH_SIZE,
                     max_tokens: int = DEFAULT_MAX_TOKENS, au_threshold: float = AU_THRESHOLD,
                     device="cpu", progress: bool = False, precision: str = "fp32",
                     state: Optional[Dict] = None,
                     after_batch: Optional[Callable[[Dict], None]] = None) -> Dict[str, float]:
    """All the metrics of the module docstring over a ``SentenceDataset``.

    ``after_batch``, when given, is called after every batch with the evaluation so far:
    ``{"batches", "sentences", "stats", "rng"}`` (the batches done, their sums and the
    random state after them). Passing that dict back as ``state`` continues the evaluation
    where it stopped, with the result an uninterrupted one gives.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    model.eval()
    stats, done = SplitStats(), 0
    if state is not None:
        for key, value in state["stats"].items():  # the sums back on the device
            setattr(stats, key, value.to(device) if torch.is_tensor(value) else value)
        done = state["batches"]
        set_rng_state(state["rng"])
    bar = tqdm(total=len(dataset), unit="sent", disable=not progress, file=sys.stderr,
               dynamic_ncols=True, initial=stats.sentences)
    for i, batch in enumerate(length_sorted_batches(dataset, batch_size)):
        if i < done:
            continue
        batch = move_to(batch, device)
        stats.add(batch, importance_weights(model, batch, k, max_tokens, precision))
        bar.update(batch["nsentences"])
        if after_batch is not None:
            after_batch({"batches": i + 1, "sentences": stats.sentences,
                         "stats": dict(vars(stats)), "rng": rng_state(device)})
    bar.close()
    return stats.result(model.encoder.latent_dim, au_threshold)


def rng_state(device) -> Dict[str, Tensor]:
    """The random state the importance samples are drawn from (CPU, and CUDA's on CUDA)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Dict[str, Tensor]):
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def load_split(task, split: str, max_sentences: int = 0):
    """The split as a ``SentenceDataset`` with no length limit (evaluation scores every
    non-empty sentence, whatever the training run's --max-sentence-length), only its
    first ``max_sentences`` sentences in file order when that is positive."""
    return task.build_dataset(split, max_words=0, limit=max_sentences)


def move_to(batch, device):
    """A collated batch with every tensor on ``device``."""
    return utils.apply_to_sample(lambda t: t.to(device), batch)
