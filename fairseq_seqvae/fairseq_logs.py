"""The one reader of fairseq-train's metrics: its logs (``--log-format json`` or
``simple``, as printed or saved) and its TensorBoard event files (``--tensorboard-logdir``).

A run is read into ``{log tag (valid, train_inner, train, ...): {metric: [(update,
value), ...]}}``; seqvae-compare, seqvae-plot and the benchmarks in ``scripts/`` use it.
"""

import json
import os
import re
import struct
from typing import Dict, List, Optional, Tuple

# {log tag (valid, train_inner, train, ...): {metric: [(update, value), ...]}}
Series = Dict[str, Dict[str, List[Tuple[int, float]]]]

# the stdout of fairseq-train as seqvae-compare saves it in each model's --save-dir
TRAIN_LOG = "train.log"

# "2026-01-01 12:00:00 | INFO | valid | <record>": fairseq names the logger after the tag
LOG_LINE = re.compile(r"\|\s*[A-Z]+\s*\|\s*(?P<tag>\w+)\s*\|\s*(?P<record>.*?)\s*$")
# --log-format simple: "key value | ..." (epoch-end records) or "key=value, ..." (train_inner)
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf|nan"
SIMPLE_PAIR = re.compile(rf"(?:^|[\s,|])(?P<key>[A-Za-z_]\w*)[= ](?P<value>{NUMBER})(?=$|[\s,|])")


class LogError(Exception):
    """A path that holds no fairseq metrics: reported as one message."""


def _float(value) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_record(tag: str, record: str) -> Optional[Dict[str, float]]:
    """Metrics of one log record: a JSON object (``--log-format json``, keys of
    epoch-end records prefixed with ``<tag>_``) or ``key value | ...`` /
    ``key=value, ...`` pairs (``--log-format simple``)."""
    if record.startswith("{"):
        try:
            raw = json.loads(record)
        except json.JSONDecodeError:
            return None
        if not isinstance(raw, dict):
            return None
        prefix = f"{tag}_"
        values = {(k[len(prefix):] if k.startswith(prefix) else k): _float(v)
                  for k, v in raw.items()}
    else:
        values = {m.group("key"): float(m.group("value")) for m in SIMPLE_PAIR.finditer(record)}
    values = {k: v for k, v in values.items() if v is not None}
    return values if "num_updates" in values else None


def parse_line(line: str) -> Optional[Tuple[str, Dict[str, float]]]:
    """(tag, metrics with ``num_updates``) of one metric record of a fairseq-train log;
    None for any other line."""
    m = LOG_LINE.search(line)
    if m is None:
        return None
    values = parse_record(m.group("tag"), m.group("record"))
    return None if values is None else (m.group("tag"), values)


def batches_per_epoch(text: str) -> Optional[int]:
    """The number of batches of a training epoch, from fairseq-train's log
    ("grouped total_num_itrs = N"); None if it is not there."""
    found = re.findall(r"grouped total_num_itrs = (\d+)", text)
    return int(found[-1]) if found else None


def parse_log(text: str) -> Series:
    """``{tag: {metric: [(update, value)]}}`` of the metric records in a fairseq-train
    log; other lines are ignored. A value logged twice for one update (a run resumed
    from a checkpoint) keeps the later one."""
    series: Dict[str, Dict[str, Dict[int, float]]] = {}
    for line in text.splitlines():
        parsed = parse_line(line)
        if parsed is None:
            continue
        tag, values = parsed
        update = int(values.pop("num_updates"))
        for key, value in values.items():
            series.setdefault(tag, {}).setdefault(key, {})[update] = value
    return _sorted(series)


def _sorted(series: Dict[str, Dict[str, Dict[int, float]]]) -> Series:
    return {tag: {key: sorted(points.items()) for key, points in metrics.items()}
            for tag, metrics in series.items()}


def _event_payloads(path: str):
    """Records of a TFRecord file (u64 length, u32 length crc, data, u32 data crc);
    a record cut short by a run that is still writing ends the file."""
    with open(path, "rb") as f:
        while True:
            header = f.read(12)
            if len(header) < 12:
                return
            (length,) = struct.unpack("<Q", header[:8])
            payload = f.read(length)
            if len(payload) < length or len(f.read(4)) < 4:
                return
            yield payload


def read_tensorboard(logdir: str) -> Series:
    """Scalars of fairseq's ``--tensorboard-logdir`` (one folder of event files per
    tag: train_inner, train, valid, ...); the step is the update number."""
    from tensorboardX.proto.event_pb2 import Event

    series: Dict[str, Dict[str, Dict[int, float]]] = {}
    for folder, _, files in sorted(os.walk(logdir)):
        tag = os.path.basename(folder)
        for name in sorted(f for f in files if f.startswith("events.out.tfevents.")):
            for payload in _event_payloads(os.path.join(folder, name)):
                event = Event()
                try:
                    event.ParseFromString(payload)
                except Exception:  # a damaged record: skip it, keep the rest
                    continue
                for value in event.summary.value:
                    kind = value.WhichOneof("value")
                    if kind == "simple_value":
                        number = value.simple_value
                    elif kind == "tensor" and value.tensor.float_val:
                        number = value.tensor.float_val[0]
                    else:
                        continue
                    series.setdefault(tag, {}).setdefault(value.tag, {})[event.step] = number
    return _sorted(series)


def read_log(path: str) -> Series:
    """``parse_log`` of a file; a run with no metric records is an error."""
    with open(path, encoding="utf-8", errors="replace") as f:
        series = parse_log(f.read())
    if not series:
        raise LogError(f"{path} has no fairseq metric records (a fairseq-train log "
                       "written with --log-format json or simple?)")
    return series


def load_run(path: str) -> Series:
    """A run from a log file, or from a directory: its TensorBoard event files (a
    --tensorboard-logdir, or a --save-dir with one inside), else the ``train.log``
    in it (the stdout of fairseq-train, as seqvae-compare saves it)."""
    if os.path.isfile(path):
        return read_log(path)
    if os.path.isdir(path):
        series = read_tensorboard(path)
        if series:
            return series
        log = os.path.join(path, TRAIN_LOG)
        if os.path.isfile(log):
            return read_log(log)
        raise LogError(f"no TensorBoard event files with scalars and no {TRAIN_LOG} under "
                       f"{path} (pass a fairseq-train log file, a --tensorboard-logdir, or "
                       f"a --save-dir holding either)")
    raise LogError(f"{path} does not exist")
