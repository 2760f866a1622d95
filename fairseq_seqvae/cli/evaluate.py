"""seqvae-eval: evaluate sequence-VAE checkpoints the way the literature does.

He et al. (2019)'s protocol, which text-VAE papers report (Long, Cao & Cheung 2019
among them): importance-weighted NLL and PPL, the ELBO, KL, mutual information,
active units and encoder-feature dispersion of a binarized split. The metrics, their
units and definitions are in ``fairseq_seqvae.scoring``.
"""

import argparse
import json
import logging
import os
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

logger = logging.getLogger("seqvae-eval")

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
    parser.add_argument("--resume", action="store_true",
                        help="keep each checkpoint's evaluation so far in "
                        "<checkpoint>.eval-state.pt after every batch, and continue from "
                        "that file when it exists, with the result an uninterrupted run "
                        "gives (for long evaluations that may be stopped); the file is "
                        "deleted when the evaluation finishes")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even if CUDA is available")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per checkpoint instead of the table")
    parser.add_argument("--no-progress-bar", action="store_true", help="no progress bar on stderr")
    return parser


def checkpoint_paths(paths: List[str]) -> List[str]:
    return [p for arg in paths for p in arg.split(":") if p]


def state_file(checkpoint: str) -> str:
    """Where ``--resume`` keeps a checkpoint's evaluation so far."""
    return os.path.splitext(checkpoint)[0] + ".eval-state.pt"


def result_settings(path: str, args, device: str) -> Dict:
    """What a resumed evaluation must share with the one it continues: the checkpoint
    file as it was, and every setting that changes the result."""
    stat = os.stat(path)
    return {"checkpoint_bytes": stat.st_size, "checkpoint_mtime_ns": stat.st_mtime_ns,
            "data": os.path.abspath(args.data), "device": device,
            **{key: getattr(args, key) for key in (
                "split", "max_sentences", "k", "batch_size", "max_tokens", "seed", "precision")}}


def load_state(path: str, settings: Dict) -> Optional[Dict]:
    """The evaluation so far that ``--resume`` saved for this checkpoint, if any."""
    if not os.path.exists(path):
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    differ = {key: (state["settings"].get(key), value) for key, value in settings.items()
              if state["settings"].get(key) != value}
    if differ:
        raise ValueError(
            f"{path} holds a partial evaluation with other settings or another version of the "
            "checkpoint (" + ", ".join(f"{key}: {old} there, {new} now"
                                        for key, (old, new) in differ.items())
            + "): rerun with its settings, or delete it to evaluate from the start")
    return state


def save_state(path: str, state: Dict):
    """Written whole or not at all: a stop while saving leaves the previous state."""
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)


def evaluate_checkpoint(path: str, args) -> Dict:
    device = "cpu" if args.cpu or not torch.cuda.is_available() else "cuda"
    vae = SeqVAE.from_pretrained(path, args.data, device=device)
    dataset = load_split(vae.task, args.split, args.max_sentences)
    torch.manual_seed(args.seed)
    saved, settings, state = state_file(path), None, None
    if args.resume:
        settings = result_settings(path, args, device)
        state = load_state(saved, settings)
    if state:
        logger.info(f"{path}: resuming after {state['sentences']} of {len(dataset)} "
                    f"sentences ({saved})")
    before = state["seconds"] if state else 0.0  # evaluation time before the resume
    start, total = time.time(), max(1, len(dataset))
    bar = not args.no_progress_bar and sys.stderr.isatty()
    logged_tenths = state["sentences"] * 10 // total if state else 0

    def after_batch(so_far: Dict):
        nonlocal logged_tenths
        seconds = before + time.time() - start
        if args.resume:
            save_state(saved, {**so_far, "settings": settings, "seconds": seconds})
        tenths = so_far["sentences"] * 10 // total
        if not bar and tenths > logged_tenths:  # progress in the log, every tenth of the split
            logged_tenths = tenths
            logger.info(f"{path}: {so_far['sentences']} of {len(dataset)} sentences, "
                        f"{seconds:.0f} s")

    result = evaluate_dataset(
        vae.model, dataset, k=args.k, batch_size=args.batch_size, max_tokens=args.max_tokens,
        au_threshold=args.au_threshold, device=device,
        progress=bar, precision=args.precision, state=state, after_batch=after_batch,
    )
    if args.resume and os.path.exists(saved):
        os.remove(saved)
    if state:
        result["resumed_after_sentences"] = state["sentences"]
    result.update({
        "checkpoint": path,
        "split": args.split,
        "k": args.k,
        "batch_size": args.batch_size,
        "latent_dim": vae.latent_dim,
        "seed": args.seed,
        "device": device,
        "precision": args.precision,
        "seconds": round(before + time.time() - start, 2),
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
