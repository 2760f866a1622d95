"""fairseq-preprocess and fairseq-train command lines for this plugin: the one builder
that seqvae-compare and the benchmarks in ``scripts/`` share, with the benchmarks' runs
(binarize once, time a short training run)."""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List

from fairseq_seqvae.fairseq_logs import batches_per_epoch, parse_log

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK = "seqvae_language_modeling"
CRITERION = "seqvae_elbo"
SPLITS = ("train", "valid", "test")


def fairseq_command(name: str) -> List[str]:
    """The fairseq console script next to this interpreter (same venv), or
    ``python -m fairseq_cli.<module>`` when the script is not there."""
    script = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "fairseq_cli." + name.split("-", 1)[1]]


def preprocess_command(text_dir: str, dest_dir: str, workers: int = 1,
                       vocab_size: int = 0) -> List[str]:
    """fairseq-preprocess --only-source of the ``train/valid/test.txt`` in ``text_dir``
    (those present) into ``dest_dir``; ``vocab_size`` > 0 keeps only that many words
    (--nwordssrc)."""
    cmd = fairseq_command("fairseq-preprocess") + [
        "--only-source", "--destdir", dest_dir, "--workers", str(workers),
    ]
    if vocab_size:
        cmd += ["--nwordssrc", str(vocab_size)]
    for split in SPLITS:
        path = os.path.join(text_dir, f"{split}.txt")
        if os.path.isfile(path):
            cmd += [f"--{split}pref", path]
    return cmd


def train_command(data: str, *flags: str) -> List[str]:
    """fairseq-train on ``data`` with this plugin's task and criterion, then ``flags``
    (which may override them)."""
    return fairseq_command("fairseq-train") + [
        data, "--user-dir", PLUGIN_DIR, "--task", TASK, "--criterion", CRITERION, *flags,
    ]


def binarize_once(text_dir: str, bin_dir: str, workers: int = 2) -> None:
    """``preprocess_command`` of ``text_dir`` into ``bin_dir``, unless every split of
    ``text_dir`` is binarized there already; errors exit with a message."""
    for split in ("train", "valid"):
        if not os.path.isfile(os.path.join(text_dir, f"{split}.txt")):
            sys.exit(f"error: {text_dir}/{split}.txt not found (--data takes a directory "
                     "with train.txt and valid.txt, one sentence per line)")
    splits = [s for s in SPLITS if os.path.isfile(os.path.join(text_dir, f"{s}.txt"))]
    if all(os.path.exists(os.path.join(bin_dir, f"{s}.idx")) for s in splits):
        return
    print(f"binarizing {text_dir} -> {bin_dir}", flush=True)
    subprocess.run(preprocess_command(text_dir, bin_dir, workers=workers), check=True,
                   stdout=subprocess.DEVNULL)


def timing_command(bin_dir, flags, updates, log_interval):
    """fairseq-train for ``updates`` updates (SGD, clip 5, no validation, no checkpoints,
    a JSON line every ``log_interval`` updates) with ``flags`` added."""
    return train_command(
        bin_dir, "--cpu", "--optimizer", "sgd", "--lr", "1.0", "--clip-norm", "5.0",
        "--max-update", str(updates), "--seed", "1",
        "--disable-validation", "--no-save", "--num-workers", "0",
        "--log-format", "json", "--log-interval", str(log_interval), "--no-progress-bar",
        *flags,
    )


def train_timing(bin_dir, flags, updates, log_interval):
    """Runs ``timing_command``; returns, over the logged intervals after the
    first (a warm-up), the medians ``tokens_per_s`` (target tokens of the updates'
    batches) and ``s_per_update`` and the mean ``inner_steps`` per update
    (--aggressive, else None); plus ``batches_per_epoch`` and the run's ``wall_s``."""
    cmd = timing_command(bin_dir, flags, updates, log_interval)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(cmd + ["--save-dir", tmp], capture_output=True, text=True)
    wall = time.time() - start
    if out.returncode != 0:
        sys.exit(f"fairseq-train failed:\n{out.stderr[-3000:]}")
    log = out.stdout + out.stderr
    intervals = parse_log(log).get("train_inner", {})
    wps = [v for _, v in intervals.get("wps", [])][1:]
    wpb = [v for _, v in intervals.get("wpb", [])][1:]
    if not wps:
        sys.exit("too few logged intervals: raise --updates or lower --log-interval")
    inner = [v for _, v in intervals.get("inner_steps", [])][1:]
    # fairseq rounds ups to 2 decimals; tokens per update / tokens per s is finer
    return {
        "tokens_per_s": statistics.median(wps),
        "s_per_update": statistics.median(b / w for b, w in zip(wpb, wps)),
        "inner_steps": statistics.mean(inner) if inner else None,
        "batches_per_epoch": batches_per_epoch(log),
        "wall_s": wall,
    }
