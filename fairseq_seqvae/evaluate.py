"""seqvae-eval: evaluate sequence-VAE checkpoints the way the literature does.

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
| au        | count          | dimensions with Var_x(E_q[z_d]) >= --au-threshold (0.01)       |
| feat_var  | -              | encoder-feature dispersion: variance across the split of each  |
|           |                | pooled encoder feature (what the posterior is computed from),  |
|           |                | averaged over features; near 0 = every input looks alike       |

For an LSTM language model (``--latent-dim 0``) iw_nll is the exact NLL and the
latent metrics are absent.
"""

import argparse
import json
import logging
import math
import os
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from fairseq_seqvae.data.sentence_dataset import SentenceDataset
from fairseq_seqvae.hub import SeqVAE, move_to, resolve_checkpoint
from fairseq_seqvae.modules.gaussian import (
    active_units,
    gaussian_kl,
    gaussian_log_density,
    mutual_information,
)

logger = logging.getLogger(__name__)

DEFAULT_K = 500
DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_TOKENS = 40000
AU_THRESHOLD = 0.01
# logits computed at once (rows x vocabulary): small enough to stay in cache, which on
# CPU makes the projection about 1.4x faster than rows of 8192 (scripts/benchmark_eval.py)
LOGITS_ELEMENTS = 5_000_000


def sequence_log_prob(model, prev_output_tokens: Tensor, target: Tensor, z: Tensor) -> Tensor:
    """log p(x | z) of each sequence under the decoder, teacher-forced.

    Args:
        prev_output_tokens, target: N x T (BOS + words, words + EOS; right-padded)
        z: N x Z
    Returns:
        N, float64
    """
    features, _ = model.decoder(prev_output_tokens, {"z": z}, features_only=True)  # N x T x H
    real = target.ne(model.decoder.padding_idx)  # N x T
    rows = real.nonzero()[:, 0]  # sequence of each real position
    features, target = features[real], target[real]  # P x H, P
    log_prob = torch.zeros(z.size(0), dtype=torch.float64, device=z.device)
    step = max(1, LOGITS_ELEMENTS // model.decoder.output_projection.out_features)
    for start in range(0, target.numel(), step):
        part = slice(start, start + step)
        logits = model.decoder.output_layer(features[part]).float()  # rows x V
        nll = F.cross_entropy(logits, target[part], reduction="none")
        log_prob.index_add_(0, rows[part], -nll.double())
    return log_prob


@torch.no_grad()
def importance_weights(model, batch, k: int = DEFAULT_K, max_tokens: int = DEFAULT_MAX_TOKENS):
    """log p(x, z_i) - log q(z_i | x) for k samples z_i ~ q(z|x) of every sentence,
    decoded in chunks of at most ``max_tokens`` decoder positions.

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
        log_px = sequence_log_prob(model, net["prev_output_tokens"], target, mean)
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
        ).view(bsz, m)
        zd = z.double()
        log_pz = gaussian_log_density(zd, torch.zeros_like(zd), torch.zeros_like(zd))  # B x m
        log_qz = gaussian_log_density(zd, mean.double().unsqueeze(1), logvar.double().unsqueeze(1))
        log_w.append(log_pxz + log_pz - log_qz)
        log_px_z.append(log_pxz)
    return {"log_w": torch.cat(log_w, 1), "log_px_z": torch.cat(log_px_z, 1),
            "z": z_all, "mean": mean, "logvar": logvar, "pooled": enc["pooled"]}


def iw_log_likelihood(model, batch, k: int = DEFAULT_K,
                      max_tokens: int = DEFAULT_MAX_TOKENS) -> Tensor:
    """Importance-weighted estimate of log p(x) per sentence: log-mean-exp of the k
    importance weights (Burda et al. 2016), in nats.

    Returns:
        B, float64
    """
    return log_mean_exp(importance_weights(model, batch, k, max_tokens)["log_w"])


def log_mean_exp(log_w: Tensor) -> Tensor:
    """log (1/k sum_i exp(log_w_i)) over the last dimension, stably: B x k -> B."""
    return torch.logsumexp(log_w, dim=-1) - math.log(log_w.size(-1))


class SplitStats:
    """Sums over the batches of a split, turned into the metrics table by ``result``."""

    def __init__(self):
        self.sentences = self.tokens = 0
        self.nll = self.rec = self.kl = self.mi = 0.0
        self.mean_sum = self.mean_sq_sum = self.feat_sum = self.feat_sq_sum = 0.0

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
            out.update({
                "mi": self.mi / n,
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
                     device="cpu", progress: bool = False) -> Dict[str, float]:
    """All the metrics of the module docstring over a ``SentenceDataset``."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    model.eval()
    stats = SplitStats()
    bar = tqdm(total=len(dataset), unit="sent", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    for batch in length_sorted_batches(dataset, batch_size):
        batch = move_to(batch, device)
        stats.add(batch, importance_weights(model, batch, k, max_tokens))
        bar.update(batch["nsentences"])
    bar.close()
    return stats.result(model.encoder.latent_dim, au_threshold)


# ---- command line -------------------------------------------------------------------

COLUMNS = [  # (key, header, format)
    ("iw_nll", "IW-NLL", "{:.2f}"),
    ("ppl", "PPL", "{:.2f}"),
    ("elbo", "-ELBO", "{:.2f}"),
    ("elbo_ppl", "ELBO-PPL", "{:.2f}"),
    ("rec", "rec", "{:.2f}"),
    ("kl", "KL", "{:.3f}"),
    ("mi", "MI", "{:.3f}"),
    ("au", "AU", "{}"),
    ("feat_var", "feat-var", "{:.4g}"),
]


def format_table(results: List[Dict]) -> str:
    """A markdown table, one row per checkpoint; '-' where a metric does not apply."""
    header = ["checkpoint"] + [h for _, h, _ in COLUMNS]
    rows = [[r["checkpoint"]] + [fmt.format(r[key]) if key in r else "-"
                                 for key, _, fmt in COLUMNS] for r in results]
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(str(c).rjust(w) for c, w in zip(cells, widths)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqvae-eval",
        description="Evaluate sequence-VAE checkpoints on a binarized split: "
        "importance-weighted NLL and PPL, ELBO, KL, mutual information, active units "
        "and encoder-feature dispersion (He et al. 2019's protocol).",
    )
    parser.add_argument("data", help="fairseq-preprocess --only-source output directory "
                        "(dict.txt and the split) the checkpoints were trained with")
    parser.add_argument("--path", required=True, nargs="+", metavar="CHECKPOINT",
                        help="checkpoint files or --save-dir directories (then "
                        "checkpoint_best.pt), several separated by spaces or ':'")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("-k", "--k", "--iw-samples", dest="k", type=int, default=DEFAULT_K,
                        help=f"importance samples per sentence for IW-NLL (default {DEFAULT_K},"
                        " as in the literature)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="sentences per batch; also the minibatch over which MI "
                        "approximates q(z) (default 32, as in published numbers)")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                        help="decoder positions (sentences x samples x length) per forward "
                        f"pass: bounds memory (default {DEFAULT_MAX_TOKENS})")
    parser.add_argument("--au-threshold", type=float, default=AU_THRESHOLD,
                        help="a latent dimension is active when the variance of its "
                        "posterior mean across the split is at least this (default 0.01)")
    parser.add_argument("--max-sentences", type=int, default=0,
                        help="evaluate only the first N sentences of the split in file "
                        "order (default 0: all)")
    parser.add_argument("--seed", type=int, default=1,
                        help="random seed: results are deterministic for a seed (default 1)")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even if CUDA is available")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per checkpoint instead of the table")
    parser.add_argument("--no-progress-bar", action="store_true", help="no progress bar on stderr")
    return parser


def checkpoint_paths(paths: List[str]) -> List[str]:
    return [p for arg in paths for p in arg.split(":") if p]


def load_split(task, split: str, max_sentences: int = 0):
    """The split as a ``SentenceDataset`` with no length limit (evaluation scores every
    non-empty sentence, whatever the training run's --max-sentence-length)."""
    task.cfg.max_sentence_length = 0
    task.load_dataset(split)
    dataset = task.dataset(split)
    if max_sentences > 0 and max_sentences < len(dataset):
        inner = dataset.dataset
        keep = dataset.index[:max_sentences]
        dataset = SentenceDataset(
            [inner[i] for i in keep], dataset.sizes[:max_sentences], task.source_dictionary,
            shuffle=False, name=f"{split} (first {max_sentences})",
        )
    return dataset


def evaluate_checkpoint(path: str, args) -> Dict:
    device = "cpu" if args.cpu or not torch.cuda.is_available() else "cuda"
    vae = SeqVAE.from_pretrained(path, args.data, device=device)
    dataset = load_split(vae.task, args.split, args.max_sentences)
    torch.manual_seed(args.seed)
    start = time.time()
    result = evaluate_dataset(
        vae.model, dataset, k=args.k, batch_size=args.batch_size, max_tokens=args.max_tokens,
        au_threshold=args.au_threshold, device=device,
        progress=not args.no_progress_bar and sys.stderr.isatty(),
    )
    result.update({
        "checkpoint": path,
        "split": args.split,
        "k": args.k,
        "batch_size": args.batch_size,
        "latent_dim": vae.latent_dim,
        "seed": args.seed,
        "device": device,
        "seconds": round(time.time() - start, 2),
        **vae.progress,  # how long the checkpoint was trained
    })
    return result


def main(argv: Optional[List[str]] = None):
    parser = get_parser()
    args = parser.parse_args(argv)
    for flag, value in (("-k", args.k), ("--batch-size", args.batch_size),
                        ("--max-tokens", args.max_tokens)):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
                        level=logging.INFO, stream=sys.stderr)
    results = []
    for path in checkpoint_paths(args.path):
        try:
            path = resolve_checkpoint(path)
            result = evaluate_checkpoint(path, args)
        except (FileNotFoundError, ValueError) as err:
            sys.exit(f"seqvae-eval: error: {err}")
        results.append(result)
        if args.json:
            print(json.dumps(result), flush=True)
    if not args.json:
        first = results[0]
        print(f"split {first['split']} of {args.data}: {first['sentences']} sentences, "
              f"{first['tokens']} tokens (words + EOS); k = {args.k} importance samples; "
              f"MI over batches of {args.batch_size}; AU threshold {args.au_threshold}; "
              f"seed {args.seed}; {first['device']}")
        print(format_table(results))
        print("nats per sentence; PPL = exp(total IW-NLL / tokens); time: "
              + ", ".join(f"{r['checkpoint']} {r['seconds']:.1f} s" for r in results))


if __name__ == "__main__":
    main()
