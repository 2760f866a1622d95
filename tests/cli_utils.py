"""Helpers for integration tests that run the real fairseq CLIs as subprocesses.

fairseq's own test helpers (``tests/utils.py`` in its repository) are not installed
with the package, so the few we need live here: finding the console scripts, a tiny
synthetic corpus, running a command with a readable failure, the common training
flags, and readers for fairseq's JSON log lines and TensorBoard event files.
"""

import json
import math
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
USER_DIR = REPO / "fairseq_seqvae"
PTB_DIR = REPO.parent / "shared" / "data" / "ptb"
BIN_DIR = Path(sys.executable).parent

# One CLI call: startup (importing torch + fairseq) alone takes seconds on a busy
# machine; a tiny run must still finish well inside this.
DEFAULT_TIMEOUT = 240


def console_script(name: str) -> str:
    """Path of a console script (fairseq-train, torchrun, ...) installed beside the
    interpreter running the tests, so tests use the same venv as pytest."""
    path = BIN_DIR / name
    if path.is_file():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"console script {name!r} not found next to {sys.executable} or on PATH")
    return found


def ptb_dir() -> Path:
    """The shared PTB copy (never committed into this repo); skips the test if absent."""
    if not all((PTB_DIR / f"{split}.txt").is_file() for split in ("train", "valid")):
        pytest.skip(f"PTB data not found at {PTB_DIR} (train.txt, valid.txt); "
                    f"see {PTB_DIR.parent}/README.md")
    return PTB_DIR


def synthetic_sentences(n: int, seed: int, vocab_size: int = 50, min_len: int = 3,
                        max_len: int = 12, prefix: str = "w") -> List[str]:
    """``n`` random sentences over the words ``{prefix}0 .. {prefix}{vocab_size-1}``.

    Word frequencies are Zipf-like so there is something for a model to learn, and
    every word of the vocabulary occurs once ``n`` is more than a few dozen.
    """
    rng = random.Random(seed)
    words = [f"{prefix}{i}" for i in range(vocab_size)]
    weights = [1.0 / (i + 1) for i in range(vocab_size)]
    # every word at least once (a predictable dictionary size), in short lines
    lines = [" ".join(words[i:i + max_len]) for i in range(0, vocab_size, max_len)]
    while len(lines) < n:
        length = rng.randint(min_len, max_len)
        lines.append(" ".join(rng.choices(words, weights, k=length)))
    return lines


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def synthetic_text(root: Path, **sizes: int) -> Path:
    """``root/<split>.txt`` of ``n`` synthetic sentences for each ``split=n`` (seeds 1,
    2, ... in the order given); returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for seed, (split, n) in enumerate(sizes.items(), 1):
        write_lines(root / f"{split}.txt", synthetic_sentences(n, seed=seed))
    return root


def binarized_synthetic(root: Path, train: int, valid: int, test: int = 0) -> Path:
    """A synthetic corpus (with a test split if ``test``) binarized by
    fairseq-preprocess into ``root/bin``."""
    synthetic_text(root, train=train, valid=valid, **({"test": test} if test else {}))
    return preprocess(root / "bin", root, trainpref=root / "train.txt",
                      validpref=root / "valid.txt",
                      testpref=root / "test.txt" if test else None)


def with_empty_lines(lines: Sequence[str], every: int) -> List[str]:
    """A copy of ``lines`` with an empty line after every ``every``-th line."""
    out = []
    for i, line in enumerate(lines, 1):
        out.append(line)
        if i % every == 0:
            out.append("")
    return out


def _tail(text: Optional[str], n: int = 4000) -> str:
    if not text:
        return "(empty)"
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= n else "...\n" + text[-n:]


def _env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    # one intra-op thread: reproducible sums, and fair to a shared 2-core machine
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def run(cmd: Sequence, cwd: Path, expect_ok: bool = True, timeout: float = DEFAULT_TIMEOUT,
        env: Optional[Dict[str, str]] = None,
        stdin: Optional[str] = None) -> subprocess.CompletedProcess:
    """Runs ``cmd`` (with ``stdin`` as its standard input, if given) and returns the
    completed process (text stdout/stderr).

    Fails the test with the command and the tails of stdout and stderr when it
    times out, or when its success does not match ``expect_ok``.
    """
    cmd = [str(c) for c in cmd]
    shown = " ".join(cmd)
    try:
        proc = subprocess.run(cmd, cwd=str(cwd), capture_output=True, text=True,
                              timeout=timeout, env=_env(env), input=stdin)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"timed out after {timeout}s: {shown}\n--- stdout (tail) ---\n"
                    f"{_tail(e.stdout)}\n--- stderr (tail) ---\n{_tail(e.stderr)}")
    if (proc.returncode == 0) != expect_ok:
        want = "to succeed" if expect_ok else "to fail"
        pytest.fail(f"expected {want}, got exit code {proc.returncode}: {shown}\n"
                    f"--- stdout (tail) ---\n{_tail(proc.stdout)}\n"
                    f"--- stderr (tail) ---\n{_tail(proc.stderr)}")
    return proc


def run_fails(cmd: Sequence, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    """Runs a command that must exit non-zero; returns it for message checks."""
    return run(cmd, cwd, expect_ok=False, **kwargs)


def preprocess(destdir: Path, cwd: Path, trainpref: Optional[Path] = None,
               validpref: Optional[Path] = None, srcdict: Optional[Path] = None,
               testpref: Optional[Path] = None):
    """``fairseq-preprocess --only-source``: one sentence per line -> destdir."""
    cmd = [console_script("fairseq-preprocess"), "--only-source", "--destdir", destdir,
           "--workers", "1"]
    if trainpref is not None:
        cmd += ["--trainpref", trainpref]
    if validpref is not None:
        cmd += ["--validpref", validpref]
    if testpref is not None:
        cmd += ["--testpref", testpref]
    if srcdict is not None:
        cmd += ["--srcdict", srcdict]
    run(cmd, cwd)
    return destdir


def train_args(data, save_dir, *extra) -> List[str]:
    """Arguments (without the program) shared by every fairseq-train run in the
    tests: tiny model, CPU, JSON log of every update. ``extra`` comes last, so a
    test changes a default by passing the flag again."""
    return [
        str(data),
        "--user-dir", str(USER_DIR),
        "--task", "seqvae_language_modeling",
        "--arch", "seqvae_lstm_tiny",
        "--criterion", "seqvae_elbo",
        "--optimizer", "adam",
        "--lr", "0.01",
        "--max-tokens", "500",
        "--cpu",
        "--seed", "3",
        "--save-dir", str(save_dir),
        "--best-checkpoint-metric", "elbo",
        "--log-format", "json",
        "--log-interval", "1",
        "--no-progress-bar",
        *[str(e) for e in extra],
    ]


def train(data, save_dir, *extra, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    """``fairseq-train`` with :func:`train_args`."""
    return run([console_script("fairseq-train"), *train_args(data, save_dir, *extra)],
               cwd, **kwargs)


def train_config(data, save_dir, *extra):
    """The fairseq config that ``fairseq-train`` builds from :func:`train_args`,
    parsed in this process (for tests that drive fairseq's Trainer directly). The
    plugin is already imported here, so ``--user-dir`` is left out."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    argv = train_args(data, save_dir, *extra)
    at = argv.index("--user-dir")
    del argv[at:at + 2]
    parser = options.get_training_parser()
    return convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, input_args=argv))


def validate_args(data, path, *extra) -> List[str]:
    """The least fairseq-validate needs for a checkpoint of this plugin: the data
    directory, the task (fairseq's validate parser has no default task) and a batch
    size. Model and criterion settings come from the checkpoint."""
    return [
        str(data),
        "--user-dir", str(USER_DIR),
        "--task", "seqvae_language_modeling",
        "--path", str(path),
        "--max-tokens", "2000",
        "--log-format", "json",
        *[str(e) for e in extra],
    ]


# "2026-01-01 12:00:00 | INFO | train_inner | {...}"
_JSON_LOG = re.compile(r"\|\s*(?P<tag>[\w.]+)\s*\|\s*(?P<json>\{.*\})\s*$")


def _number(value):
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def json_log(text: str, tag: Optional[str] = None) -> List[Dict]:
    """fairseq ``--log-format json`` records in ``text`` (optionally only those of
    ``tag``: train_inner, train, valid), values converted to float where possible."""
    records = []
    for line in text.splitlines():
        m = _JSON_LOG.search(line)
        if m is None or (tag is not None and m.group("tag") != tag):
            continue
        try:
            record = json.loads(m.group("json"))
        except json.JSONDecodeError:
            continue
        records.append({k: _number(v) for k, v in record.items()})
    return records


def by_update(records: List[Dict], key: str = "num_updates") -> Dict[int, Dict]:
    """``{update number: record}`` for train_inner records (one per update)."""
    return {int(r[key]): r for r in records}


def assert_finite(record: Dict, keys: Iterable[str]):
    for key in keys:
        assert key in record, f"{key!r} missing from logged metrics {sorted(record)}"
        assert isinstance(record[key], float) and math.isfinite(record[key]), (
            f"{key} = {record[key]!r} is not a finite number"
        )


def _tfrecords(path: Path):
    """Payloads of a TFRecord file: u64 length, u32 crc, data, u32 crc per record."""
    data = path.read_bytes()
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        start = pos + 12
        yield data[start:start + length]
        pos = start + length + 4


def tensorboard_scalars(logdir: Path) -> Dict[str, List[Tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` of every scalar in the event files directly
    in ``logdir`` (fairseq writes one folder per log tag: train, train_inner, valid)."""
    from tensorboardX.proto.event_pb2 import Event

    scalars: Dict[str, List[Tuple[int, float]]] = {}
    for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
        for payload in _tfrecords(path):
            event = Event()
            event.ParseFromString(payload)
            for value in event.summary.value:
                if value.WhichOneof("value") == "simple_value":
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def markdown_rows(table: str):
    """The cells (stripped) of a markdown table's header and body rows; the rule is left out."""
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in table.splitlines()
            if line.startswith("|") and not set(line.strip()) <= set("|-: ")]
