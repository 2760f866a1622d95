"""seqvae-compare: train sequence VAEs that differ only in the encoder pooling and
print their validation metrics side by side.

Long, Cao & Cheung (2019), "Preventing Posterior Collapse in Sequence VAEs with
Pooling": with the same data, seed, decoder and budget, the last-state encoder
(``--pooling last``) lets the KL collapse to zero, while a max- or mean-pooled encoder
keeps an informative posterior (KL and active units well above zero).

Runs the real ``fairseq-preprocess --only-source`` and ``fairseq-train`` (from the
same environment as this Python) as subprocesses. Input is the built-in synthetic
corpus (``fairseq_seqvae.cli.demo_corpus``, the default), a text file of one sentence per
line (``--text``, split deterministically into train/valid) or a folder holding
``train.txt`` and ``valid.txt`` (``--data-dir``). Example::

    seqvae-compare                                  # demo corpus, last vs max
    seqvae-compare --text my.txt --poolings last,max,mean --epochs 4
    seqvae-compare --data-dir ptb/ --arch seqvae_lstm_ptb -- --latent-dim 16

Flags after ``--`` (or in ``--extra``) go to every ``fairseq-train`` unchanged and
override the defaults below.
"""

import argparse
import glob
import json
import math
import os
import random
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List

from fairseq_seqvae.cli import plot, quiet_libraries
from fairseq_seqvae.cli.demo_corpus import write_demo_corpus
from fairseq_seqvae.cli.fairseq_commands import SPLITS, preprocess_command
from fairseq_seqvae.cli.fairseq_commands import train_command as fairseq_train_command
from fairseq_seqvae.cli.table import format_records
from fairseq_seqvae.cli.text import LONG_LINE_WORDS, NotUTF8Error, long_lines, read_lines
from fairseq_seqvae.fairseq_logs import TRAIN_LOG, load_run, parse_line
from fairseq_seqvae.modules.poolers import POOLERS

# Defaults: the PTB architecture shrunk to 128-unit LSTMs (its He et al. 2019
# initialization, +-0.01, kept: with it the last encoder state starts out nearly the same
# for every sentence, which is the failure pooling avoids), word dropout 0.5 (Bowman et al.
# 2016), 8 passes over the training sentences with a linear KL warm-up over the first half,
# so that beta = 1 for the second half of training (on PTB's short sentences, 1.5 passes
# left last and max alike; 8 separate them), and the pooling study's recipe
# (docs/COLLAPSE.md): the encoder trained by Adam (lr 1e-3) and the decoder by SGD (lr 1,
# clip 5, loss averaged over sentences), as the pooling paper's authors train, plus free
# bits of 0.1 nats per latent dimension (Kingma et al. 2016). Without free bits, at beta = 1 both encoders keep about one nat in one unit; with
# them the max-pooled posterior stays informative in every unit and the last-state one
# less so, and SGD for the decoder fits long documents about 10 nats better than Adam.
DEFAULT_ARCH = "seqvae_lstm_ptb"
# model size: only with the default --arch
DEFAULT_SIZE_FLAGS = [
    "--encoder-embed-dim", "128", "--encoder-hidden-dim", "128",
    "--decoder-embed-dim", "128", "--decoder-hidden-dim", "128",
]
# training: with every --arch (unless --no-default-flags)
DEFAULT_TRAIN_FLAGS = [
    "--word-dropout", "0.5",
    "--optimizer", "encoder_decoder", "--encoder-optimizer", "adam", "--encoder-lr", "0.001",
    "--decoder-optimizer", "sgd", "--lr", "1.0", "--clip-norm", "5.0", "--sentence-avg",
    "--kl-schedule", "linear", "--kl-start", "0.0", "--kl-max", "1.0", "--free-bits", "0.1",
]  # and --kl-warmup-updates: half the update budget (set_budget)
DEFAULT_EPOCHS = 8
DEFAULT_BATCH_SIZE = 32
DEFAULT_DEMO_SENTENCES = 40000
# fewer validation sentences than this and the collapse verdict (KL, MI, AU of the
# validation set) is noise: AU is a variance over the split, MI a minibatch estimate
MIN_VALID_SENTENCES = 500

# fairseq-preprocess refuses to overwrite a dictionary: these are the files it writes
BIN_FILES = ["dict.txt", "preprocess.log"] + [
    f"{split}.{ext}" for split in SPLITS for ext in ("bin", "idx")
]
# metrics of the table: (key in fairseq's valid log, column title, format)
COLUMNS = [
    ("rec", "rec", "{:.2f}"),
    ("kl", "KL", "{:.2f}"),
    ("elbo", "-ELBO", "{:.2f}"),
    ("mi", "MI", "{:.2f}"),
    ("au", "AU", "{:.0f}"),
    ("ppl", "PPL<=", "{:.1f}"),
    ("updates", "updates", "{:.0f}"),
    ("wall_s", "wall s", "{:.0f}"),
]


class CompareError(Exception):
    """A problem with the user's input or a failed subprocess: printed, exit code 1."""


def progress(msg: str):
    print(f"[seqvae-compare] {msg}", file=sys.stderr, flush=True)


def read_sentences(path: str):
    """Non-empty lines of ``path`` (stripped) and the number of empty ones dropped."""
    if not os.path.exists(path):
        raise CompareError(f"no such file: {path}")
    if not os.path.isfile(path):
        raise CompareError(f"not a file: {path}")
    try:
        lines = [line.strip() for line in read_lines(path)]
    except NotUTF8Error as e:
        raise CompareError(str(e)) from None
    kept = [line for line in lines if line]
    long = long_lines(kept)
    if long:
        shown = ", ".join(map(str, long[:5])) + (", ..." if len(long) > 5 else "")
        progress(f"warning: {path}: {len(long)} sentence(s) have more than "
                 f"{LONG_LINE_WORDS} words (non-empty lines {shown}; the longest has "
                 f"{max(len(s.split()) for s in kept)}): one sentence per line is "
                 "expected; they are trained on in full (pass -- --max-sentence-length N "
                 "to skip them)")
    return kept, len(lines) - len(kept)


def write_lines(path: str, lines: List[str]):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)


def split_text(path: str, out_dir: str, valid_fraction: float, seed: int = 0) -> Dict:
    """Splits a one-sentence-per-line file into ``out_dir``/{train,valid}.txt.

    Empty (whitespace-only) lines are dropped and counted. The validation sentences
    are a seeded random sample (same file, same seed -> same split) of
    ``round(valid_fraction * n)`` sentences, at least 1; the rest, in file order,
    are the training set.
    """
    sentences, empty = read_sentences(path)
    if len(sentences) < 2:
        raise CompareError(
            f"{path}: needs at least 2 non-empty lines (one sentence per line) to make "
            f"a train and a valid split; it has {len(sentences)} (and {empty} empty)"
        )
    n_valid = min(len(sentences) - 1, max(1, round(valid_fraction * len(sentences))))
    valid_ids = set(random.Random(seed).sample(range(len(sentences)), n_valid))
    os.makedirs(out_dir, exist_ok=True)
    write_lines(os.path.join(out_dir, "train.txt"),
                [s for i, s in enumerate(sentences) if i not in valid_ids])
    write_lines(os.path.join(out_dir, "valid.txt"),
                [s for i, s in enumerate(sentences) if i in valid_ids])
    return {
        "source": os.path.abspath(path),
        "lines": len(sentences) + empty,
        "empty_dropped": empty,
        "train": len(sentences) - n_valid,
        "valid": n_valid,
    }


def prepare_text(args, work_dir: str) -> Dict:
    """Returns {"dir": folder with train.txt/valid.txt[/test.txt], "info": {...}}."""
    text_dir = os.path.join(work_dir, "text")
    if args.text:
        info = split_text(args.text, text_dir, args.valid_fraction)
        info["kind"] = "text"
        return {"dir": text_dir, "info": info}
    if args.data_dir:
        if not os.path.isdir(args.data_dir):
            raise CompareError(f"no such folder: {args.data_dir}")
        info = {"kind": "data-dir", "source": os.path.abspath(args.data_dir)}
        for split in SPLITS:
            path = os.path.join(args.data_dir, f"{split}.txt")
            if not os.path.isfile(path):
                if split == "test":
                    continue
                raise CompareError(f"--data-dir {args.data_dir}: no {split}.txt "
                                   "(one sentence per line)")
            sentences, empty = read_sentences(path)
            if not sentences:
                raise CompareError(f"{path} has no non-empty line")
            info[split] = len(sentences)
            info[f"{split}_empty"] = empty
        # fairseq skips empty lines itself, so the folder is binarized as it is
        return {"dir": os.path.abspath(args.data_dir), "info": info}
    n_valid = max(1, args.demo_sentences // 20)
    write_demo_corpus(text_dir, n_train=args.demo_sentences, n_valid=n_valid,
                      n_test=n_valid, seed=args.demo_seed)
    info = {"kind": "demo", "source": "fairseq_seqvae.cli.demo_corpus (seed "
            f"{args.demo_seed})", "train": args.demo_sentences, "valid": n_valid,
            "test": n_valid}
    return {"dir": text_dir, "info": info}


def run_logged(cmd: List[str], log_path: str, env: Dict, on_line=None) -> int:
    """Runs ``cmd``, writes its stdout and stderr to ``log_path`` and hands each line
    to ``on_line``. Returns the exit code."""
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env, bufsize=1)
        for line in proc.stdout:
            log.write(line)
            log.flush()  # a complete log even if this process is killed
            if on_line is not None:
                on_line(line)
        return proc.wait()


def log_tail(path: str, n: int = 25) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return "".join(f.readlines()[-n:])


def binarize(text_dir: str, bin_dir: str, env: Dict, vocab_size: int = 0) -> str:
    os.makedirs(bin_dir, exist_ok=True)
    for name in BIN_FILES:
        if os.path.exists(os.path.join(bin_dir, name)):
            os.remove(os.path.join(bin_dir, name))
    cmd = preprocess_command(text_dir, bin_dir, vocab_size=vocab_size)
    log_path = os.path.join(bin_dir, "preprocess.stdout.log")
    if run_logged(cmd, log_path, env) != 0:
        raise CompareError(f"fairseq-preprocess failed (log {log_path}):\n{log_tail(log_path)}")
    return bin_dir


def parse_valid_line(line: str):
    """The metrics (with ``num_updates``) of a validation record of fairseq-train's
    log; None for any other line."""
    parsed = parse_line(line)
    return parsed[1] if parsed is not None and parsed[0] == "valid" else None


def train_command(args, extra: List[str], bin_dir: str, pooling: str, save_dir: str):
    cmd = fairseq_train_command(bin_dir, "--arch", args.arch)
    if not args.no_default_flags:
        cmd += (DEFAULT_SIZE_FLAGS if args.arch == DEFAULT_ARCH else []) + DEFAULT_TRAIN_FLAGS
        cmd += ["--kl-warmup-updates", str(args.kl_warmup_updates)]
    cmd += [
        "--pooling", pooling,
        "--seed", str(args.seed),
        "--batch-size", str(args.batch_size),
        "--max-update", str(args.max_update),
        "--save-dir", save_dir,
        "--no-epoch-checkpoints", "--best-checkpoint-metric", "elbo",
        "--log-format", "json", "--log-interval", str(max(1, args.validate_interval // 2)),
        "--no-progress-bar", "--validate-interval-updates", str(args.validate_interval),
        # no extra validation at epoch ends, which fall at odd update counts: progress
        # lines come every --validate-interval updates and at the end
        "--validate-interval", str(10 ** 9),
        "--num-workers", "0",
    ]
    if args.minutes:
        cmd += ["--stop-time-hours", repr(args.minutes / 60.0)]
    return cmd + extra


def train_one(args, extra: List[str], bin_dir: str, pooling: str, model_dir: str,
              env: Dict, tag: str) -> Dict:
    os.makedirs(model_dir, exist_ok=True)
    # fairseq resumes from checkpoint_last.pt: start every comparison from scratch
    for path in glob.glob(os.path.join(model_dir, "checkpoint*.pt")):
        os.remove(path)
    log_path = os.path.join(model_dir, TRAIN_LOG)
    cmd = train_command(args, extra, bin_dir, pooling, model_dir)
    start = time.time()
    last: Dict[str, float] = {}

    def on_line(line):
        metrics = parse_valid_line(line)
        if metrics is None:
            return
        last.clear()
        last.update(metrics)
        progress(
            f"{tag} update {metrics.get('num_updates', 0):.0f}: "
            + " ".join(f"{t} {f.format(metrics[k])}" for k, t, f in COLUMNS[:6] if k in metrics)
            + f"  ({time.time() - start:.0f} s)"
        )

    rc = run_logged(cmd, log_path, env, on_line)
    wall = time.time() - start
    if rc != 0:
        raise CompareError(
            f"fairseq-train --pooling {pooling} failed with exit code {rc} "
            f"(log {log_path}):\n{log_tail(log_path)}"
        )
    if not last:
        raise CompareError(f"fairseq-train --pooling {pooling} logged no validation "
                           f"(log {log_path}):\n{log_tail(log_path)}")
    result = {"pooling": pooling}
    for key, _, _ in COLUMNS:
        if key in last:
            result[key] = last[key]
    result.update({
        "updates": int(last.get("num_updates", 0)),
        "wall_s": round(wall, 1),
        "save_dir": os.path.abspath(model_dir),
        "checkpoint": os.path.abspath(os.path.join(model_dir, "checkpoint_last.pt")),
        "log": os.path.abspath(log_path),
    })
    return result


def format_table(results: List[Dict]) -> str:
    return format_records(results, [("pooling", "pooling", "{}")] + COLUMNS)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="seqvae-compare",
        description="Train sequence VAEs that differ only in --pooling (same data, seed, "
                    "model and budget) and compare their validation metrics: rec, KL, "
                    "-ELBO (nats per sentence), MI (nats), AU (active units), PPL bound.",
        epilog="Flags after '--' are passed to every fairseq-train unchanged, e.g. "
               "'seqvae-compare -- --latent-dim 16 --lr 0.002'.",
    )
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--text", metavar="FILE",
                     help="your text, one sentence per line, tokens separated by spaces; "
                          "empty lines are dropped (and counted), the rest split into "
                          "train/valid (see --valid-fraction)")
    src.add_argument("--data-dir", metavar="DIR",
                     help="folder with train.txt and valid.txt (test.txt optional), one "
                          "sentence per line")
    parser.add_argument("--poolings", default="last,max",
                        help="comma-separated poolers to compare, from "
                             f"{','.join(sorted(POOLERS))} (default last,max)")
    parser.add_argument("--arch", default=DEFAULT_ARCH,
                        help=f"fairseq architecture (default {DEFAULT_ARCH}, shrunk to "
                             "128-unit LSTMs by the default flags)")
    parser.add_argument("--epochs", type=float, default=DEFAULT_EPOCHS,
                        help="the update budget, in passes over the training sentences: "
                             "epochs x ceil(train sentences / batch size) updates per model "
                             f"(default {DEFAULT_EPOCHS}: 2,000 updates for 8,000 training "
                             "sentences); the KL weight rises to 1 over the first half")
    parser.add_argument("--max-update", type=int, default=None,
                        help="the update budget in optimizer updates per model, instead of "
                             "--epochs (the KL warm-up is still its first half)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="training time per model, in minutes (fairseq "
                             "--stop-time-hours), with no update limit unless --max-update "
                             "is given; the KL warm-up is half the --epochs budget. Models "
                             "may then reach different update counts, which the table shows")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"sentences per update (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--seed", type=int, default=1,
                        help="fairseq-train seed, the same for every model (default 1)")
    parser.add_argument("--validate-interval", type=int, default=None,
                        help="validate (and print progress) every N updates (default: a "
                             "round number giving six to twelve validations, 250 for "
                             "2,000 updates; 500 with --minutes and no --max-update)")
    parser.add_argument("--valid-fraction", type=float, default=0.05,
                        help="--text: fraction of the sentences held out for validation "
                             "(default 0.05, at least one sentence)")
    parser.add_argument("--vocab-size", type=int, default=0,
                        help="keep only the N most frequent words (with the special "
                             "symbols; fairseq-preprocess --nwordssrc), the rest become "
                             "<unk>; default 0 keeps every word of the training split")
    parser.add_argument("--demo-sentences", type=int, default=DEFAULT_DEMO_SENTENCES,
                        help="demo corpus: training sentences (default "
                             f"{DEFAULT_DEMO_SENTENCES}; valid and test get 1/20 of that)")
    parser.add_argument("--demo-seed", type=int, default=0,
                        help="demo corpus: generator seed (default 0)")
    parser.add_argument("--work-dir", default="quickstart-out",
                        help="where text splits, binarized data, checkpoints and logs go "
                             "(default ./quickstart-out); earlier checkpoints there are "
                             "replaced")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per fairseq-train (OMP_NUM_THREADS; default: "
                             "$OMP_NUM_THREADS, else 1, the fastest for these small "
                             "LSTMs on a shared CPU)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="models trained side by side, each with --threads threads "
                             "(default: one per pooler, at most one per CPU core)")
    parser.add_argument("--extra", default="",
                        help="extra fairseq-train flags as one string, e.g. "
                             "--extra='--latent-dim 16' (same as flags after '--')")
    parser.add_argument("--no-default-flags", action="store_true",
                        help="do not add the default model size, word dropout, optimizer and KL "
                             "schedule flags; only the architecture's own defaults and your flags")
    parser.add_argument("--no-plots", action="store_true",
                        help="do not draw the figures (by default WORK_DIR/curves.png: "
                             "validation KL, MI, AU, rec, -ELBO against updates per model; "
                             "WORK_DIR/latent.png: posterior means of the valid sentences, "
                             "PCA; a collapsed model is marked)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (data, settings, per-model metrics and "
                             "paths) on stdout instead of the table")
    return parser


def round_interval(max_update: int) -> int:
    """The default validation interval: the largest round number of updates (1, 2, 2.5
    or 5 times a power of ten) that validates at least six times in ``max_update``;
    2,000 updates give 250."""
    best, scale = 1, 1
    while scale <= max_update:
        for step in (scale, 2 * scale, 5 * scale // 2, 5 * scale):
            if max_update // step >= 6:
                best = max(best, step)
        scale *= 10
    return best


def set_budget(args, train_sentences: int) -> str:
    """Fills in ``args.max_update`` (0: no limit, with --minutes), ``kl_warmup_updates``
    (half the budget) and ``validate_interval`` from --epochs, --max-update and --minutes,
    for a training split of ``train_sentences``; returns where the budget came from."""
    epoch_updates = max(1, round(args.epochs * math.ceil(train_sentences / args.batch_size)))
    source = "--max-update"
    if args.max_update is None:
        args.max_update = 0 if args.minutes else epoch_updates
        source = ("--minutes" if args.minutes else
                  f"--epochs {args.epochs:g} over {train_sentences} training sentences")
    args.kl_warmup_updates = max(1, (args.max_update or epoch_updates) // 2)
    if args.validate_interval is None:
        args.validate_interval = round_interval(args.max_update) if args.max_update else 500
    return source


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: List[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.extra_flags = shlex.split(args.extra) + passthrough
    args.pooling_list = [p.strip() for p in args.poolings.split(",") if p.strip()]
    unknown = [p for p in args.pooling_list if p not in POOLERS]
    if not args.pooling_list or unknown:
        parser.error(f"--poolings: unknown {unknown or 'empty list'}; "
                     f"choose from {','.join(sorted(POOLERS))}")
    if len(set(args.pooling_list)) != len(args.pooling_list):
        parser.error("--poolings: a pooler is listed twice")
    if args.max_update is not None and args.max_update < 1:
        parser.error("--max-update must be positive")
    if args.epochs <= 0:
        parser.error("--epochs must be positive")
    if args.minutes is not None and args.minutes <= 0:
        parser.error("--minutes must be positive")
    if args.validate_interval is not None and args.validate_interval < 1:
        parser.error("--validate-interval must be positive")
    if not 0 < args.valid_fraction < 1:
        parser.error("--valid-fraction must be between 0 and 1")
    if args.demo_sentences < 20:
        parser.error("--demo-sentences must be at least 20")
    if args.vocab_size < 0 or 0 < args.vocab_size < 8:
        parser.error("--vocab-size must be 0 (no limit) or at least 8")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


def run(args) -> Dict:
    work_dir = os.path.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    env = dict(os.environ)
    threads = str(args.threads) if args.threads else env.get("OMP_NUM_THREADS", "1")
    env.update({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                "PYTHONUNBUFFERED": "1"})

    data = prepare_text(args, work_dir)
    info = data["info"]
    if info["kind"] == "text":
        progress(f"{info['source']}: {info['lines']} lines, dropped {info['empty_dropped']} "
                 f"empty, {info['train']} train / {info['valid']} valid sentences")
    else:
        progress(f"data: {info['source']} ({info.get('train')} train / "
                 f"{info.get('valid')} valid sentences)")
    if info.get("valid", 0) < MIN_VALID_SENTENCES:
        progress(f"warning: only {info.get('valid', 0)} validation sentences: the collapse "
                 f"verdict (KL, MI, AU on the validation set) needs about "
                 f"{MIN_VALID_SENTENCES} or more to mean anything; give more text")
    bin_dir = binarize(data["dir"], os.path.join(work_dir, "bin"), env, args.vocab_size)
    progress(f"binarized with fairseq-preprocess into {bin_dir}")
    source = set_budget(args, info["train"])
    budget = (f"{args.max_update} updates" if args.max_update else
              f"{args.minutes:g} min") + f" of {args.batch_size} sentences"
    progress(f"budget: {budget} per model ({source}), the KL weight rising to 1 over the "
             f"first {args.kl_warmup_updates} updates")

    def train(i: int, pooling: str) -> Dict:
        tag = f"[{i + 1}/{len(args.pooling_list)} {pooling}]"
        progress(f"{tag} training (fairseq-train --pooling {pooling}, log "
                 f"{os.path.join(work_dir, pooling, TRAIN_LOG)})")
        result = train_one(args, args.extra_flags, bin_dir, pooling,
                           os.path.join(work_dir, pooling), env, tag)
        progress(f"{tag} done: {result['updates']} updates in {result['wall_s']:.0f} s")
        return result

    jobs = args.jobs or min(len(args.pooling_list), os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(train, range(len(args.pooling_list)), args.pooling_list))
    plots = {} if args.no_plots else draw_plots(results, data["dir"], bin_dir, work_dir)
    return {
        "work_dir": work_dir,
        "data": {**info, "text_dir": os.path.abspath(data["dir"]), "bin_dir": bin_dir},
        "settings": {
            "arch": args.arch,
            "poolings": args.pooling_list,
            "epochs": args.epochs,
            "max_update": args.max_update,
            "kl_warmup_updates": args.kl_warmup_updates,
            "minutes": args.minutes,
            "batch_size": args.batch_size,
            "vocab_size": args.vocab_size,
            "seed": args.seed,
            "threads": int(threads),
            "jobs": jobs,
            "train_flags": train_command(args, args.extra_flags, "BIN", "POOLING", "DIR"),
        },
        "models": results,
        "plots": plots,
    }


def draw_plots(results: List[Dict], text_dir: str, bin_dir: str, work_dir: str) -> Dict:
    """curves.png (validation metrics against updates, one line per model) and
    latent.png (PCA of the posterior means of the valid sentences; models with a
    latent variable only) in ``work_dir``; returns {figure: path}."""
    curves = os.path.join(work_dir, "curves.png")
    runs = [(r["pooling"], load_run(r["log"])) for r in results]
    plot.plot_curves(runs, plot.DEFAULT_METRICS.split(","), "valid", True, curves,
                     "seqvae-compare: validation (solid) and training (dashed)")
    figures = {"curves": curves}
    sentences, _ = plot.read_sentences(os.path.join(text_dir, "valid.txt"), None)
    panels = [(r["pooling"], plot.encode_means(r["pooling"], r["checkpoint"], sentences,
                                               bin_dir, cpu=True)) for r in results]
    panels = [(name, means) for name, means in panels if means is not None]  # no LMs
    if panels:
        figures["latent"] = os.path.join(work_dir, "latent.png")
        plot.plot_latent(panels, None, "", figures["latent"])
    progress(f"figures: {', '.join(figures.values())}")
    return figures


def report(summary: Dict) -> str:
    lines = [
        "validation metrics (rec, KL, -ELBO in nats per sentence; MI in nats; AU = "
        "active units; PPL<= = the ELBO's perplexity bound):",
        "",
        format_table(summary["models"]),
        "",
    ]
    collapsed = [r["pooling"] for r in summary["models"] if r.get("au", 0) == 0]
    valid = summary["data"].get("valid", 0)
    too_few = (f" (from only {valid} validation sentences: too few for the verdict to "
               f"mean anything; about {MIN_VALID_SENTENCES} or more are needed)"
               if valid < MIN_VALID_SENTENCES else "")
    if collapsed:
        lines.append("posterior collapse (no active unit): " + ", ".join(collapsed) + too_few)
    elif too_few:
        lines.append("no posterior collapse (every model has an active unit)" + too_few)
    for r in summary["models"]:
        lines.append(f"{r['pooling']}: checkpoint {r['checkpoint']}  log {r['log']}")
    lines.append(f"binarized data: {summary['data']['bin_dir']}")
    for name, path in summary["plots"].items():
        lines.append(f"figure ({name}): {path}")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    quiet_libraries()
    try:
        summary = run(args)
    except CompareError as e:
        print(f"seqvae-compare: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("seqvae-compare: interrupted", file=sys.stderr)
        sys.exit(130)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(report(summary))


if __name__ == "__main__":
    main()
