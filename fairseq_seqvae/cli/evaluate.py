"""seqvae-eval: evaluate sequence-VAE checkpoints the way the literature does.

He et al. (2019)'s protocol, which text-VAE papers report (Long, Cao & Cheung 2019
among them): importance-weighted NLL and PPL, the ELBO, KL, mutual information,
active units and encoder-feature dispersion of a binarized split. The metrics, their
units and definitions are in ``fairseq_seqvae.scoring``.
"""

import argparse
import json
import logging
import sys
import time
from typing import Dict, List, Optional

import torch

from fairseq_seqvae.cli.table import format_records
from fairseq_seqvae.hub import SeqVAE, pretrain_seconds, resolve_checkpoint
from fairseq_seqvae.modules.gaussian import AU_THRESHOLD
from fairseq_seqvae.scoring import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_K,
    DEFAULT_MAX_TOKENS,
    PRECISIONS,
    evaluate_dataset,
    load_split,
)

# ---- command line -------------------------------------------------------------------

COLUMNS = [  # (key, header, format)
    ("iw_nll", "IW-NLL", "{:.2f}"),
    ("ppl", "PPL", "{:.2f}"),
    ("elbo", "-ELBO", "{:.2f}"),
    ("elbo_ppl", "ELBO-PPL", "{:.2f}"),
    ("rec", "rec", "{:.2f}"),
    ("kl", "KL", "{:.3f}"),
    ("mi", "MI", "{:.3f}"),
    ("mi_split", "MI (split)", "{:.3f}"),
    ("au", "AU", "{}"),
    ("feat_var", "feat-var", "{:.4g}"),
]


def format_table(results: List[Dict]) -> str:
    """A markdown table, one row per checkpoint; '-' where a metric does not apply."""
    return format_records(results, [("checkpoint", "checkpoint", "{}")] + COLUMNS, markdown=True)


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
                        "approximates q(z) (default 32, as in He et al. 2019's numbers; "
                        "'MI (split)' takes the whole split, as Li et al. 2019's)")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                        help="decoder positions (sentences x samples x length) per forward "
                        f"pass: bounds memory (default {DEFAULT_MAX_TOKENS})")
    parser.add_argument("--au-threshold", type=float, default=AU_THRESHOLD,
                        help="a latent dimension is active when the variance of its "
                        f"posterior mean across the split is at least this (default "
                        f"{AU_THRESHOLD})")
    parser.add_argument("--max-sentences", type=int, default=0,
                        help="evaluate only the first N sentences of the split in file "
                        "order (default 0: all)")
    parser.add_argument("--seed", type=int, default=1,
                        help="random seed: results are deterministic for a seed (default 1)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="the decoder's arithmetic: fp32 (default), or bf16 (bfloat16 "
                        "autocast for the LSTM and the output projection; the log-softmax "
                        "computes in fp32 and rounds each token's log-probability to bf16, "
                        "every sum is float64; faster where the CPU or GPU has bfloat16 "
                        "units; accuracy in docs/PERFORMANCE.md)")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even if CUDA is available")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per checkpoint instead of the table")
    parser.add_argument("--no-progress-bar", action="store_true", help="no progress bar on stderr")
    return parser


def checkpoint_paths(paths: List[str]) -> List[str]:
    return [p for arg in paths for p in arg.split(":") if p]


def evaluate_checkpoint(path: str, args) -> Dict:
    device = "cpu" if args.cpu or not torch.cuda.is_available() else "cuda"
    vae = SeqVAE.from_pretrained(path, args.data, device=device)
    dataset = load_split(vae.task, args.split, args.max_sentences)
    torch.manual_seed(args.seed)
    start = time.time()
    result = evaluate_dataset(
        vae.model, dataset, k=args.k, batch_size=args.batch_size, max_tokens=args.max_tokens,
        au_threshold=args.au_threshold, device=device,
        progress=not args.no_progress_bar and sys.stderr.isatty(), precision=args.precision,
    )
    result.update({
        "checkpoint": path,
        "split": args.split,
        "k": args.k,
        "batch_size": args.batch_size,
        "latent_dim": vae.latent_dim,
        "seed": args.seed,
        "device": device,
        "precision": args.precision,
        "seconds": round(time.time() - start, 2),
        **vae.progress,  # how long the checkpoint was trained
    })
    pretrain = pretrain_seconds(vae.cfg, path)
    if pretrain is not None:  # the cost of a run includes its encoder's pretraining
        result["pretrain_seconds"] = pretrain
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
              f"MI over batches of {args.batch_size} (MI (split) over the split); "
              f"AU threshold {args.au_threshold}; "
              f"seed {args.seed}; {first['device']}, {args.precision}")
        print(format_table(results))
        print("nats per sentence; PPL = exp(total IW-NLL / tokens); time: "
              + ", ".join(f"{r['checkpoint']} {r['seconds']:.1f} s" for r in results))


if __name__ == "__main__":
    main()
