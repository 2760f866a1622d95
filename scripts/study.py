#!/usr/bin/env python
"""Run a grid of fairseq-train runs (settings x poolings x seeds), resumably, evaluate
each at the end of its KL warm-up and at its end, and write a table and figures.

The grid is a JSON file (examples in ``examples/studies/``)::

    {
      "name": "screen-yahoo",
      "data": "data-bin/yahoo-mini",          # binarized; --data overrides
      "poolings": ["last", "max"],
      "seeds": [1],
      "flags": ["--arch", "seqvae_lstm_ptb", "--max-update", "2000", ...],  # fairseq-train
      "settings": {
        "adam":  {"flags": ["--optimizer", "adam", "--lr", "0.003"]},
        "split": {"flags": ["--optimizer", "encoder_decoder", "--lr", "1.0"]},
        "split-bienc": {"extends": "split", "flags": ["--encoder-bidirectional"]},
        "split-fb": {"extends": "split", "flags": ["--free-bits", "0.1"],
                     "poolings": ["last", "max", "mean"], "seeds": [1, 2]}
      },
      "eval": {"k": 50}
    }

fairseq-train gets this plugin's task and criterion, then the flags. A setting's flags
come after those it ``extends`` (recursively) and after the grid's ``flags``, so a later
flag wins: a new factor is a new setting, one flag different from the setting it
extends. A setting's own ``"poolings"`` or ``"seeds"`` replace the grid's for it
alone (they are not inherited), e.g. a second seed for the contrast that decides.
Each run is ``<setting>-<pooling>-s<seed>`` in ``--out``
(default ``runs/<name>``); re-running the script resumes every unfinished run from its
checkpoint_last.pt, skips finished ones and reuses finished evaluations, so it can be
stopped at any time (``--hours`` stops it cleanly).

Each run is evaluated with ``seqvae-eval`` at two checkpoints: ``warmup`` (the update at
which beta reaches its final value: a setting's ``"warmup_end"``, else its
``--kl-hold-updates`` + ``--kl-warmup-updates``; the run trains to there, keeps that
checkpoint as checkpoint_warmup.pt, and resumes) and ``final`` (checkpoint_last.pt). On the valid split (k = 1): -ELBO, KL, MI, AU, feature
dispersion; on the test split: IW-NLL and PPL with k = ``eval.k`` (default 50), at the
phases listed in ``eval.test_phases`` (default both).
The table's β is the KL weight of fairseq's validation record at that update. Results go to
``--results`` (default ``results.jsonl`` in ``--out``) and ``table.md``. The results file is
also read: a run whose folder is gone but whose final row is recorded there keeps its recorded
rows and is not trained again, so a committed results file outlives the (uncommitted)
checkpoints. ``curves-<setting>.png`` shows each setting's
validation curves, one line per run, and ``summary.png`` the final valid KL, MI and AU
of every setting and pooling.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Dict, List, Optional

from fairseq_seqvae.cli.fairseq_commands import train_command
from fairseq_seqvae.cli.table import format_records
from fairseq_seqvae.fairseq_logs import TRAIN_LOG, parse_log

BIN_DIR = os.path.dirname(sys.executable)
PHASES = ("warmup", "final")
WARMUP_CHECKPOINT = "checkpoint_warmup.pt"
# fairseq-train flags every run gets (its log, checkpoints and validation batch)
RUN_FLAGS = ["--log-format", "json", "--no-progress-bar", "--num-workers", "0",
             "--no-epoch-checkpoints", "--batch-size-valid", "32"]
# table columns: (key, header, format)
COLUMNS = [
    ("setting", "setting", "{}"), ("pooling", "pooling", "{}"), ("seed", "seed", "{}"),
    ("phase", "phase", "{}"), ("updates", "updates", "{:.0f}"), ("beta", "β", "{:.2f}"),
    ("valid_elbo", "valid −ELBO", "{:.2f}"), ("valid_kl", "KL", "{:.2f}"),
    ("valid_mi", "MI", "{:.2f}"), ("valid_au", "AU", "{:.0f}"),
    ("valid_feat_var", "feat-var", "{:.2e}"), ("test_iw_nll", "test IW-NLL", "{:.2f}"),
    ("test_ppl", "test PPL", "{:.1f}"), ("train_min", "train min", "{:.0f}"),
]


class StudyError(Exception):
    """A bad grid file or a failed command: printed, exit code 1."""


def log(msg: str):
    print(f"[study {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def flag_value(flags: List[str], name: str) -> Optional[str]:
    """The value of the last ``name VALUE`` in ``flags``, or None."""
    found = None
    for i, flag in enumerate(flags[:-1]):
        if flag == name:
            found = flags[i + 1]
    return found


def load_grid(path: str) -> Dict:
    try:
        with open(path, encoding="utf-8") as f:
            grid = json.load(f)
    except FileNotFoundError:
        raise StudyError(f"no grid file {path}")
    except ValueError as e:
        raise StudyError(f"{path} is not valid JSON: {e}")
    for key in ("name", "poolings", "seeds", "settings"):
        if key not in grid:
            raise StudyError(f"{path}: the grid needs '{key}' (see scripts/study.py --help)")
    return grid


def setting_flags(grid: Dict, name: str, seen=()) -> List[str]:
    """The grid's flags, then those of the settings ``name`` extends, then its own."""
    settings = grid["settings"]
    if name not in settings:
        raise StudyError(f"setting '{seen[-1]}' extends unknown setting '{name}'")
    if name in seen:
        raise StudyError(f"settings extend each other in a cycle: {' -> '.join(seen + (name,))}")
    setting = settings[name]
    parent = setting.get("extends")
    base = setting_flags(grid, parent, seen + (name,)) if parent else list(grid.get("flags", []))
    return base + [str(f) for f in setting.get("flags", [])]


def warmup_end(grid: Dict, name: str) -> int:
    setting = grid["settings"][name]
    while "warmup_end" not in setting and setting.get("extends"):
        setting = grid["settings"][setting["extends"]]
    if "warmup_end" in setting:
        return int(setting["warmup_end"])
    flags = setting_flags(grid, name)
    return sum(int(flag_value(flags, flag) or 0)
               for flag in ("--kl-hold-updates", "--kl-warmup-updates"))


def expand(grid: Dict, only: Optional[List[str]]) -> List[Dict]:
    runs = []
    for setting in grid["settings"]:
        flags = setting_flags(grid, setting)
        max_update = flag_value(flags, "--max-update")
        if max_update is None:
            raise StudyError(f"setting '{setting}' has no --max-update (the run's budget)")
        own = grid["settings"][setting]
        for pooling in own.get("poolings", grid["poolings"]):
            for seed in own.get("seeds", grid["seeds"]):
                name = f"{setting}-{pooling}-s{seed}"
                if only and not any(pattern in name for pattern in only):
                    continue
                runs.append({"name": name, "setting": setting, "pooling": pooling,
                             "seed": seed, "flags": flags, "max_update": int(max_update),
                             "warmup_end": warmup_end(grid, setting)})
    return runs


def legs(run: Dict) -> List[int]:
    """The updates a run trains to, one fairseq-train call each: the end of its warm-up
    (where its checkpoint is kept), then its --max-update. Resuming is exact, so the
    two calls train the same model as one."""
    end = run["warmup_end"]
    return [end, run["max_update"]] if 0 < end < run["max_update"] else [run["max_update"]]


def run_command(run: Dict, data: str, save_dir: str, max_update: int,
                stop_hours: Optional[float]) -> List[str]:
    cmd = train_command(data, *run["flags"], "--pooling", run["pooling"],
                        "--seed", str(run["seed"]), "--save-dir", save_dir, *RUN_FLAGS,
                        "--max-update", str(max_update))
    # checkpoint_last.pt at every validation, not only at epoch ends: a stopped run
    # loses at most one validation interval
    interval = flag_value(run["flags"], "--validate-interval-updates")
    if interval:
        cmd += ["--save-interval-updates", interval, "--keep-interval-updates", "1"]
    if stop_hours is not None:
        cmd += ["--stop-time-hours", f"{max(stop_hours, 1e-3):.4f}"]
    return cmd


def valid_records(log_path: str) -> Dict[int, Dict[str, float]]:
    """fairseq's validation metrics in the log at ``log_path`` (if any), by update."""
    if not os.path.isfile(log_path):
        return {}
    with open(log_path, encoding="utf-8", errors="replace") as f:
        series = parse_log(f.read()).get("valid", {})
    out: Dict[int, Dict[str, float]] = {}
    for key, points in series.items():
        for update, value in points:
            out.setdefault(update, {})[key] = value
    return out


def run_keys(run: Dict) -> Dict:
    """The fields that name a run in its table rows."""
    return {key: run[key] for key in ("name", "setting", "pooling", "seed")}


def load_results(path: str) -> Dict[str, List[Dict]]:
    """The rows recorded in the results file ``path`` (if any), by run name."""
    recorded: Dict[str, List[Dict]] = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                try:
                    row = json.loads(line)
                    recorded.setdefault(row["name"], []).append(row)
                except (ValueError, KeyError, TypeError):
                    raise StudyError(f"{path}, line {number}: not a row of results "
                                     f"(a JSON object with a 'name')")
    return recorded


class Study:
    def __init__(self, grid: Dict, data: str, out: str, threads: int, deadline: Optional[float],
                 recorded: Optional[Dict[str, List[Dict]]] = None):
        self.grid, self.data, self.out = grid, data, out
        self.threads, self.deadline = threads, deadline
        self.recorded = recorded or {}
        self.k = int(grid.get("eval", {}).get("k", 50))
        self.test_phases = grid.get("eval", {}).get("test_phases", list(PHASES))
        self.env = {**os.environ, "OMP_NUM_THREADS": str(threads),
                    "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}

    def hours_left(self) -> Optional[float]:
        return None if self.deadline is None else (self.deadline - time.time()) / 3600

    def run_logged(self, cmd: List[str], log_path: str) -> int:
        """Runs ``cmd`` with its output appended to ``log_path``; returns its exit code."""
        with open(log_path, "a", encoding="utf-8") as f:
            f.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
            f.flush()
            return subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=self.env)

    def finished(self, run: Dict) -> bool:
        """Whether ``run`` has reached its --max-update."""
        log_path = os.path.join(self.out, run["name"], TRAIN_LOG)
        return max(valid_records(log_path), default=0) >= run["max_update"]

    def train(self, run: Dict) -> bool:
        """Trains (or resumes) ``run``; True once it has reached its --max-update."""
        save_dir = os.path.join(self.out, run["name"])
        os.makedirs(save_dir, exist_ok=True)
        log_path = os.path.join(save_dir, TRAIN_LOG)
        for end in legs(run):
            if max(valid_records(log_path), default=0) >= end:
                continue
            left = self.hours_left()
            if left is not None and left <= 0:
                return False
            log(f"{run['name']}: training to update {end}")
            start = time.time()
            cmd = run_command(run, self.data, save_dir, end, left)
            rc = self.run_logged(cmd, log_path)
            if rc != 0:
                raise StudyError(f"{run['name']}: fairseq-train failed (exit code {rc}); "
                                 f"see {log_path}")
            if max(valid_records(log_path), default=0) < end:
                log(f"{run['name']}: stopped by --hours after "
                    f"{(time.time() - start) / 60:.1f} min")
                return False
            if end == run["warmup_end"]:
                shutil.copyfile(os.path.join(save_dir, "checkpoint_last.pt"),
                                os.path.join(save_dir, WARMUP_CHECKPOINT))
            log(f"{run['name']}: at update {end} after {(time.time() - start) / 60:.1f} min")
        return True

    def evaluate(self, checkpoint: str, split: str, k: int) -> Dict:
        """seqvae-eval's JSON for ``checkpoint`` on ``split``, cached beside it."""
        cache = f"{checkpoint[:-3]}.eval-{split}-k{k}.json"
        if os.path.isfile(cache) and os.path.getmtime(cache) >= os.path.getmtime(checkpoint):
            with open(cache, encoding="utf-8") as f:
                return json.load(f)
        cmd = [os.path.join(BIN_DIR, "seqvae-eval"), self.data, "--path", checkpoint,
               "--split", split, "-k", str(k), "--json", "--no-progress-bar", "--cpu"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env)
        if proc.returncode != 0:
            raise StudyError(f"seqvae-eval failed on {checkpoint}:\n{proc.stderr[-2000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        with open(cache, "w", encoding="utf-8") as f:
            json.dump(result, f)
        return result

    def recorded_rows(self, run: Dict) -> Optional[List[Dict]]:
        """The run's recorded rows, if its folder is gone and its final row is recorded."""
        rows = self.recorded.get(run["name"], [])
        if os.path.isdir(os.path.join(self.out, run["name"])):
            return None
        return rows if any(row["phase"] == "final" for row in rows) else None

    def measure(self, run: Dict, done: bool) -> List[Dict]:
        recorded = self.recorded_rows(run)
        if recorded is not None:
            return recorded
        save_dir = os.path.join(self.out, run["name"])
        valid_log = valid_records(os.path.join(save_dir, TRAIN_LOG))
        checkpoints = {"warmup": os.path.join(save_dir, WARMUP_CHECKPOINT)}
        if done:
            checkpoints["final"] = os.path.join(save_dir, "checkpoint_last.pt")
        rows = []
        for phase, checkpoint in checkpoints.items():
            if not os.path.isfile(checkpoint):
                continue
            log(f"{run['name']}: evaluating the {phase} checkpoint")
            valid = self.evaluate(checkpoint, "valid", 1)
            test = self.evaluate(checkpoint, "test", self.k) if phase in self.test_phases else {}
            updates = int(valid.get("updates", 0))
            row = run_keys(run)
            row.update({
                "phase": phase, "updates": updates,
                "beta": valid_log.get(updates, {}).get("kl_weight"),
                "train_min": valid.get("train_seconds", 0) / 60, "k": self.k,
                "checkpoint": os.path.relpath(checkpoint, self.out),
            })
            for key in ("elbo", "kl", "mi", "au", "feat_var"):
                row[f"valid_{key}"] = valid.get(key)
            for key in ("iw_nll", "ppl"):
                row[f"test_{key}"] = test.get(key)
            rows.append(row)
        return rows

    def run_one(self, run: Dict) -> List[Dict]:
        """The run's rows; a failed run gives one row saying so (every run is reported)."""
        recorded = self.recorded_rows(run)
        if recorded is not None:
            log(f"{run['name']}: recorded in the results file; not trained again")
            return recorded
        try:
            return self.measure(run, self.train(run))
        except StudyError as err:
            log(f"{run['name']}: FAILED: {err}")
            return [{**run_keys(run), "phase": "failed", "error": str(err)}]


def format_table(rows: List[Dict]) -> str:
    """The markdown table of ``rows``: the run's names flush left, the numbers right."""
    return format_records(rows, COLUMNS, markdown=True, align="l" * 4 + "r" * (len(COLUMNS) - 4))


def draw_curves(study: Study, runs: List[Dict]) -> List[str]:
    figures = []
    paths = {run["name"]: os.path.join(study.out, run["name"], TRAIN_LOG) for run in runs}
    for setting in dict.fromkeys(run["setting"] for run in runs):
        logs = [f"{run['pooling']}-s{run['seed']}={paths[run['name']]}"
                for run in runs if run["setting"] == setting and valid_records(paths[run["name"]])]
        if not logs:
            continue
        out = os.path.join(study.out, f"curves-{setting}.png")
        cmd = [os.path.join(BIN_DIR, "seqvae-plot"), "curves", *logs, "--out", out,
               "--title", f"{study.grid['name']}: {setting}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=study.env)
        if proc.returncode != 0:
            log(f"no figure for {setting}: {proc.stderr.strip()[-300:]}")
            continue
        figures.append(out)
    return figures


def write_report(rows: List[Dict], results: str, out: str, title: str) -> str:
    """Writes the rows to the results file and their table to table.md in ``out``;
    returns the table."""
    with open(results, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    table = format_table(rows)
    with open(os.path.join(out, "table.md"), "w", encoding="utf-8") as f:
        f.write(f"{title}\n\n{table}\n")
    return table


def draw_summary(rows: List[Dict], path: str, title: str) -> Optional[str]:
    """summary.png: the final checkpoints' valid KL, MI and AU, one group of bars per
    setting, one bar per pooling (seeds averaged)."""
    final = [row for row in rows if row["phase"] == "final"]
    if not final:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(row["setting"] for row in final))
    poolings = list(dict.fromkeys(row["pooling"] for row in final))
    width = 0.8 / len(poolings)
    fig, axes = plt.subplots(3, 1, figsize=(max(6, 1.1 * len(settings)), 7), sharex=True)
    for ax, (key, label) in zip(axes, [("valid_kl", "KL (nats)"), ("valid_mi", "MI (nats)"),
                                       ("valid_au", "active units")]):
        for j, pooling in enumerate(poolings):
            values = []
            for setting in settings:
                found = [row[key] for row in final
                         if row["setting"] == setting and row["pooling"] == pooling]
                values.append(sum(found) / len(found) if found else float("nan"))
            ax.bar([i + (j - (len(poolings) - 1) / 2) * width for i in range(len(settings))],
                   values, width, label=pooling)
        ax.set_ylabel(label)
    axes[0].legend(title="pooling")
    axes[0].set_title(title)
    axes[-1].set_xticks(range(len(settings)), settings, rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="scripts/study.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("grid", help="the grid, a JSON file (see above)")
    parser.add_argument("--data", help="binarized data directory (default: the grid's 'data')")
    parser.add_argument("--out", help="folder of the runs, results and figures "
                        "(default runs/<grid name>)")
    parser.add_argument("--results", metavar="FILE",
                        help="the results file, read at the start and rewritten after every "
                             "run (default results.jsonl in --out); runs recorded there whose "
                             "folders are gone are reported as recorded, not trained again")
    parser.add_argument("--jobs", type=int, default=2,
                        help="runs trained side by side (default 2, one per core here)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads per run (OMP_NUM_THREADS; default 1)")
    parser.add_argument("--hours", type=float, default=None,
                        help="wall-clock budget: runs stop cleanly (with a checkpoint) when "
                             "it is spent and no new run starts; re-run to resume "
                             "(default: no limit)")
    parser.add_argument("--only", nargs="+", metavar="TEXT",
                        help="only the runs whose name contains one of these")
    parser.add_argument("--dry-run", action="store_true",
                        help="print each run's fairseq-train command and exit")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: evaluate what is finished and write the report")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.threads < 1:
        parser.error("--jobs and --threads must be at least 1")
    try:
        grid = load_grid(args.grid)
        data = args.data or grid.get("data")
        if not data:
            raise StudyError("no data directory: pass --data or set 'data' in the grid")
        if not os.path.isfile(os.path.join(data, "dict.txt")):
            raise StudyError(f"{data} holds no binarized corpus (no dict.txt); binarize it "
                             f"with fairseq-preprocess --only-source")
        out = os.path.abspath(args.out or os.path.join("runs", grid["name"]))
        runs = expand(grid, args.only)
        if not runs:
            raise StudyError("no run matches --only")
        if args.dry_run:
            for run in runs:
                for end in legs(run):
                    cmd = run_command(run, data, os.path.join(out, run["name"]), end, None)
                    print(" ".join(shlex.quote(c) for c in cmd))
            updates = sum(run["max_update"] for run in runs)
            print(f"# {len(runs)} runs, {updates} updates in all", file=sys.stderr)
            return
        os.makedirs(out, exist_ok=True)
        deadline = None if args.hours is None else time.time() + args.hours * 3600
        results_file = os.path.abspath(args.results or os.path.join(out, "results.jsonl"))
        study = Study(grid, data, out, args.threads, deadline, load_results(results_file))
        if args.report:
            study.deadline = time.time()  # nothing trains; finished runs are measured
        log(f"{len(runs)} runs in {out}, {args.jobs} at a time, {args.threads} thread(s) each")
        # the report covers the whole grid: runs left out by --only count as they stand
        grid_runs = expand(grid, None)
        chosen = {run["name"] for run in runs}
        results = {run["name"]: study.measure(run, study.finished(run))
                   for run in grid_runs if run["name"] not in chosen}
        title = (f"{grid['name']}: valid metrics (k = 1) and test IW-NLL (k = {study.k}), "
                 f"nats per sentence")
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {pool.submit(study.run_one, run): run["name"] for run in runs}
            for future in as_completed(futures):
                # the report so far, in grid order, after every run
                results[futures[future]] = future.result()
                rows = [row for run in grid_runs for row in results.get(run["name"], [])]
                table = write_report(rows, results_file, out, title)
        print(table)
        runs = grid_runs
        figures = draw_curves(study, runs)
        summary = draw_summary(rows, os.path.join(out, "summary.png"),
                               f"{grid['name']}: final checkpoints (valid)")
        figures += [summary] if summary else []
        unfinished = len(runs) - len({r["name"] for r in rows
                                      if r["phase"] in ("final", "failed")})
        log(f"table: {os.path.join(out, 'table.md')}; figures: {', '.join(figures) or 'none'}"
            + (f"; {unfinished} runs unfinished (re-run to resume)" if unfinished else ""))
        failed = [row["name"] for row in rows if row["phase"] == "failed"]
        if failed:
            raise StudyError(f"{len(failed)} runs failed: {', '.join(failed)}")
    except StudyError as err:
        sys.exit(f"study.py: error: {err}")


if __name__ == "__main__":
    main()
