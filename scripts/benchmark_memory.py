#!/usr/bin/env python
"""Memory benchmark: trains the same run side by side with different ``--malloc-trim-seconds``
values, samples each trainer's resident memory, and prints a table.

Batches of varying length fragment glibc's heap (docs/PERFORMANCE.md#memory); the task gives
the free heap memory back every ``--malloc-trim-seconds``. Each configuration is the
real fairseq-train (``timing_command``: SGD, clip 5, no validation, no checkpoints; batch 32)
with one thread, all started together, so their speeds compare. ``--mmap-threshold`` adds a
run that fixes glibc's mmap threshold instead (``MALLOC_MMAP_THRESHOLD_``, trimming off).
Linux only (/proc).

    python scripts/benchmark_memory.py --data-bin data-bin/yahoo-mini --seconds 0,10
    python scripts/benchmark_memory.py --data-bin data-bin/yahoo-mini --seconds 0,2,10,60 \
        --mmap-threshold 1048576 --updates 250
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from fairseq_seqvae.cli.fairseq_commands import timing_command
from fairseq_seqvae.fairseq_logs import parse_log


def resident_mib(pid):
    """Resident set of ``pid`` in MiB, or None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-bin", required=True, metavar="DIR",
                        help="binarized corpus (fairseq-preprocess --only-source), e.g. "
                             "examples/yahoo/prepare.sh's data-bin/yahoo-mini")
    parser.add_argument("--arch", default="seqvae_lstm_yahoo",
                        help="model architecture (default seqvae_lstm_yahoo, the Yahoo size)")
    parser.add_argument("--seconds", default="0,10",
                        help="comma-separated --malloc-trim-seconds values, one run each; "
                             "0 is glibc's behaviour (default 0,10)")
    parser.add_argument("--mmap-threshold", type=int, default=0, metavar="BYTES",
                        help="also run with MALLOC_MMAP_THRESHOLD_=BYTES and no trimming "
                             "(default: no such run)")
    parser.add_argument("--updates", type=int, default=250,
                        help="updates per run (default 250, one yahoo-mini epoch)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16",
                        help="bf16: --bf16-autocast, as the converged tables (default bf16)")
    parser.add_argument("--sample-seconds", type=float, default=5.0,
                        help="seconds between resident-memory samples (default 5)")
    parser.add_argument("--log-interval", type=int, default=25,
                        help="fairseq-train's --log-interval, for tokens/s (default 25)")
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.data_bin, "dict.txt")):
        sys.exit(f"error: no binarized corpus at {args.data_bin} (--data-bin): run "
                 "examples/yahoo/prepare.sh or fairseq-preprocess --only-source first")
    if not os.path.isdir("/proc/self"):
        sys.exit("error: this benchmark reads /proc: it runs on Linux only")
    try:
        seconds = [float(v) for v in args.seconds.split(",")]
    except ValueError:
        sys.exit(f"error: --seconds takes comma-separated numbers, got {args.seconds!r}")

    configs = [(f"trim every {v:g} s" if v else "no trimming", v, {}) for v in seconds]
    if args.mmap_threshold:
        configs.append((f"mmap threshold {args.mmap_threshold}", 0,
                        {"MALLOC_MMAP_THRESHOLD_": str(args.mmap_threshold)}))
    flags = ["--arch", args.arch, "--batch-size", "32", "--sentence-avg"]
    if args.precision == "bf16":
        flags.append("--bf16-autocast")

    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for i, (name, trim_seconds, env) in enumerate(configs):
            log = open(os.path.join(tmp, f"{i}.log"), "w+")
            run_flags = flags + ["--malloc-trim-seconds", str(trim_seconds),
                                 "--save-dir", os.path.join(tmp, str(i))]
            cmd = timing_command(args.data_bin, run_flags, args.updates, args.log_interval)
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, "OMP_NUM_THREADS": "1",
                                         "MKL_NUM_THREADS": "1", **env})
            runs.append({"name": name, "proc": proc, "log": log, "rss": [],
                         "start": time.time()})
        print(f"{len(runs)} runs of {args.updates} updates side by side, one thread each",
              file=sys.stderr)
        while any(r["proc"].poll() is None for r in runs):
            for r in runs:
                if r["proc"].poll() is None:
                    rss = resident_mib(r["proc"].pid)
                    if rss is not None:
                        r["rss"].append(rss)
                elif "wall" not in r:
                    r["wall"] = time.time() - r["start"]
            time.sleep(args.sample_seconds)
        for r in runs:
            r.setdefault("wall", time.time() - r["start"])
            r["log"].seek(0)
            r["text"] = r["log"].read()
            r["log"].close()
            if r["proc"].returncode != 0:
                sys.exit(f"fairseq-train ({r['name']}) failed:\n{r['text'][-3000:]}")

    base = None
    print("| configuration | peak RSS GiB | median RSS GiB | tokens/s | wall s | x first |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in runs:
        wps = [v for _, v in parse_log(r["text"]).get("train_inner", {}).get("wps", [])][1:]
        if not wps:
            sys.exit("too few logged intervals: raise --updates or lower --log-interval")
        speed = statistics.median(wps)
        base = base or speed
        print(f"| {r['name']} | {max(r['rss']) / 1024:.2f} | "
              f"{statistics.median(r['rss']) / 1024:.2f} | {speed:,.0f} | {r['wall']:.0f} | "
              f"{speed / base:.2f} |")


if __name__ == "__main__":
    main()
