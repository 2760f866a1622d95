#!/usr/bin/env python3
"""Apply the source fixes that fairseq 0.12.2 needs on Python >= 3.11, numpy 2, torch >= 2.6,
and for an exact resume of its learning-rate schedule.

The breakages and the fixes are documented in docs/INSTALL.md
(numbers below follow its table). Each fix is a set of exact text substitutions in one
file of the installed fairseq; every occurrence of an old text is replaced.

The script is all-or-nothing and idempotent: it first checks every substitution (old text
present -> pending, old text absent and new text present -> applied, neither -> refuse),
and only writes when nothing was refused. It never imports fairseq (``import fairseq``
is exactly what fails before it has run).

Usage:
    python scripts/patch_fairseq.py                 # patch the installed fairseq
    python scripts/patch_fairseq.py --check         # 0 = all applied, 1 = pending, 2 = refused
    python scripts/patch_fairseq.py --fairseq-dir D # patch the fairseq package in D
"""

import argparse
import importlib.metadata
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_VERSION = "0.12.2"

EXIT_OK, EXIT_PENDING, EXIT_REFUSED = 0, 1, 2


@dataclass(frozen=True)
class Fix:
    number: int
    file: str  # relative to the fairseq package directory
    description: str
    subs: tuple  # ((old, new), ...)


def _fairseq_config_subs():
    # Python >= 3.11 rejects dataclass instances (unhashable) as field defaults.
    fields = [
        ("common", "CommonConfig"),
        ("common_eval", "CommonEvalConfig"),
        ("distributed_training", "DistributedTrainingConfig"),
        ("dataset", "DatasetConfig"),
        ("optimization", "OptimizationConfig"),
        ("checkpoint", "CheckpointConfig"),
        ("bmuf", "FairseqBMUFConfig"),
        ("generation", "GenerationConfig"),
        ("eval_lm", "EvalLMConfig"),
        ("interactive", "InteractiveConfig"),
        ("ema", "EMAConfig"),
    ]
    return tuple(
        (f"    {name}: {cls} = {cls}()\n", f"    {name}: {cls} = field(default_factory={cls})\n")
        for name, cls in fields
    )


FIXES = (
    Fix(
        1,
        "dataclass/configs.py",
        "FairseqConfig: nested config defaults -> field(default_factory=...) (Python >= 3.11)",
        _fairseq_config_subs(),
    ),
    Fix(
        2,
        "models/transformer/transformer_config.py",
        "TransformerConfig encoder/decoder/quant_noise -> field(default_factory=...) (Python >= 3.11)",
        (
            (
                "    encoder: EncDecBaseConfig = EncDecBaseConfig()\n",
                "    encoder: EncDecBaseConfig = field(default_factory=EncDecBaseConfig)\n",
            ),
            (
                "    decoder: DecoderConfig = DecoderConfig()\n",
                "    decoder: DecoderConfig = field(default_factory=DecoderConfig)\n",
            ),
            (
                "    quant_noise: QuantNoiseConfig = field(default=QuantNoiseConfig())\n",
                "    quant_noise: QuantNoiseConfig = field(default_factory=QuantNoiseConfig)\n",
            ),
        ),
    ),
    Fix(
        3,
        "dataclass/initialize.py",
        "hydra_init: build the default with default_factory() when .default is MISSING (after #1)",
        (
            (
                "    for k in FairseqConfig.__dataclass_fields__:\n"
                "        v = FairseqConfig.__dataclass_fields__[k].default\n",
                "    from dataclasses import MISSING\n"
                "\n"
                "    for k, fld in FairseqConfig.__dataclass_fields__.items():\n"
                "        # fields that use default_factory have MISSING as .default\n"
                "        v = fld.default_factory() if fld.default is MISSING else fld.default\n",
            ),
        ),
    ),
    Fix(
        4,
        "data/token_block_dataset.py",
        "np.compat.long -> np.int64 (removed in numpy 2)",
        (("len(sizes), dtype=np.compat.long\n", "len(sizes), dtype=np.int64\n"),),
    ),
    Fix(
        5,
        "data/language_pair_dataset.py",
        "np.compat.long -> np.int64 (removed in numpy 2; --num-batch-buckets path)",
        (("otypes=[np.compat.long]", "otypes=[np.int64]"),),
    ),
    Fix(
        6,
        "data/data_utils.py",
        "np.int -> np.int64; np.percentile(interpolation=) -> method= (numpy 2.4)",
        (
            ("                    np.int,\n", "                    np.int64,\n"),
            ('            interpolation="lower",\n', '            method="lower",\n'),
        ),
    ),
    Fix(
        7,
        "modules/dynamic_crf_layer.py",
        'np.float("inf") -> float("inf") (np.float removed)',
        (
            (
                'targets[:, :, None], np.float("inf"))',
                'targets[:, :, None], float("inf"))',
            ),
        ),
    ),
    Fix(
        8,
        "checkpoint_utils.py",
        "torch.load(weights_only=False) in load_checkpoint_to_cpu and load_ema_from_checkpoint "
        "(torch >= 2.6 default weights_only=True rejects argparse.Namespace)",
        (
            (
                'state = torch.load(f, map_location=torch.device("cpu"))\n',
                'state = torch.load(f, map_location=torch.device("cpu"), weights_only=False)\n',
            ),
            (
                '                lambda s, _: torch.serialization.default_restore_location(s, "cpu")\n'
                "            ),\n"
                "        )\n",
                '                lambda s, _: torch.serialization.default_restore_location(s, "cpu")\n'
                "            ),\n"
                "            weights_only=False,\n"
                "        )\n",
            ),
        ),
    ),
    Fix(
        9,
        "distributed/utils.py",
        "_broadcast_object_slow: torch.load(weights_only=False) (DictConfig on rank > 0, torch >= 2.6)",
        (
            (
                'obj = torch.load(buffer, map_location="cpu")\n',
                'obj = torch.load(buffer, map_location="cpu", weights_only=False)\n',
            ),
        ),
    ),
    Fix(
        10,
        "modules/transformer_layer.py",
        'disable the fused BetterTransformer fast path on checkpoint load ("Mask Type should be defined")',
        (
            (
                "        error_msgs,\n"
                "    ):\n"
                "        self.load_to_BT = True\n",
                "        error_msgs,\n"
                "    ):\n"
                "        # fused fast path fails with current torch (fairseq #4858/#4899)\n"
                "        self.load_to_BT = False\n",
            ),
        ),
    ),
    Fix(
        11,
        "trainer.py",
        "resume from an end-of-epoch checkpoint: take the learning-rate step that followed its "
        "save (train.py steps after saving; reduce_lr_on_plateau lost a halving)",
        (
            (
                "                self._start_time = time.time()\n"
                "\n"
                "            self.lr_step(epoch)\n",
                "                self._start_time = time.time()\n"
                "\n"
                "            # saved at the end of epoch - 1, before train.py's step with its\n"
                "            # validation loss: take that step, as the uninterrupted run did\n"
                "            if (\n"
                "                itr_state.get(\"iterations_in_epoch\") == 0\n"
                "                and extra_state.get(\"val_loss\") is not None\n"
                "                and last_optim_state is not None\n"
                "                and not reset_optimizer\n"
                "                and not reset_lr_scheduler\n"
                "            ):\n"
                "                self.lr_step(epoch - 1, extra_state[\"val_loss\"])\n"
                "            self.lr_step(epoch)\n",
            ),
        ),
    ),
    Fix(
        12,
        "optim/lr_scheduler/reduce_lr_on_plateau.py",
        "save and restore the patience count (num_bad_epochs, cooldown_counter) on resume",
        (
            (
                "            \"last_epoch\": self.lr_scheduler.last_epoch,\n"
                "        }\n",
                "            \"last_epoch\": self.lr_scheduler.last_epoch,\n"
                "            \"num_bad_epochs\": self.lr_scheduler.num_bad_epochs,\n"
                "            \"cooldown_counter\": self.lr_scheduler.cooldown_counter,\n"
                "        }\n",
            ),
            (
                "            self.lr_scheduler.last_epoch = state_dict[\"last_epoch\"]\n"
                "\n"
                "    def step(",
                "            self.lr_scheduler.last_epoch = state_dict[\"last_epoch\"]\n"
                "        for key in (\"num_bad_epochs\", \"cooldown_counter\"):\n"
                "            if key in state_dict:  # absent from checkpoints saved unpatched\n"
                "                setattr(self.lr_scheduler, key, state_dict[key])\n"
                "\n"
                "    def step(",
            ),
        ),
    ),
)


def installed_fairseq_dir():
    """The installed fairseq package directory, found without importing fairseq."""
    spec = importlib.util.find_spec("fairseq")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def version_of(fairseq_dir, installed):
    """fairseq's version: package metadata if installed, else the dir's version.py."""
    if installed:
        try:
            return importlib.metadata.version("fairseq")
        except importlib.metadata.PackageNotFoundError:
            return None
    version_py = fairseq_dir / "version.py"
    if not version_py.is_file():
        return None
    match = re.search(r"""__version__\s*=\s*["']([^"']+)["']""", version_py.read_text())
    return match.group(1) if match else None


def plan(fairseq_dir):
    """Check every fix without writing.

    Returns:
        (states, problems, new_texts): states maps fix number -> "applied" | "pending";
        problems lists refusal messages; new_texts maps file path -> patched text for
        files with pending substitutions.
    """
    states, problems, new_texts = {}, [], {}
    for fix in FIXES:
        path = fairseq_dir / fix.file
        if not path.is_file():
            problems.append(f"fix {fix.number}: {path} not found")
            continue
        text = new_texts.get(path)
        if text is None:
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read()
        pending = False
        for old, new in fix.subs:
            if old in text:
                text = text.replace(old, new)
                pending = True
            elif new not in text:
                problems.append(
                    f"fix {fix.number}: {fix.file}: neither the original nor the fixed text "
                    f"was found:\n    {old.strip()!r}"
                )
        states[fix.number] = "pending" if pending else "applied"
        if pending:
            new_texts[path] = text
    return states, problems, new_texts


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Apply the Python 3.11 / numpy 2 / torch >= 2.6 and resume fixes to "
        f"fairseq {SUPPORTED_VERSION} (see docs/INSTALL.md). Exit codes: 0 ok, "
        "1 fixes pending (--check only), 2 refused."
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 0 if all fixes are applied, 1 if some are pending",
    )
    parser.add_argument(
        "--fairseq-dir",
        type=Path,
        help="fairseq package directory to patch (default: the installed fairseq, "
        "located without importing it); its version is read from version.py",
    )
    args = parser.parse_args(argv)

    installed = args.fairseq_dir is None
    fairseq_dir = installed_fairseq_dir() if installed else args.fairseq_dir
    if fairseq_dir is None or not fairseq_dir.is_dir():
        print(f"REFUSED: fairseq package not found ({fairseq_dir or 'not installed'})")
        return EXIT_REFUSED
    version = version_of(fairseq_dir, installed)
    if version != SUPPORTED_VERSION:
        print(
            f"REFUSED: {fairseq_dir} is fairseq {version}; these fixes are only for "
            f"fairseq {SUPPORTED_VERSION}. Nothing written."
        )
        return EXIT_REFUSED

    print(f"fairseq {version} at {fairseq_dir}")
    states, problems, new_texts = plan(fairseq_dir)
    if problems:
        print("REFUSED: fairseq source is not as expected. Nothing written.")
        for problem in problems:
            print(f"  {problem}")
        return EXIT_REFUSED

    pending = [fix for fix in FIXES if states[fix.number] == "pending"]
    for fix in FIXES:
        if states[fix.number] == "applied":
            status = "already applied"
        else:
            status = "pending" if args.check else "applied"
        print(f"  fix {fix.number:2d} {status:15s} {fix.file}: {fix.description}")

    if args.check:
        if pending:
            print(f"{len(pending)} of {len(FIXES)} fixes pending")
            return EXIT_PENDING
        print(f"all {len(FIXES)} fixes applied")
        return EXIT_OK
    if not pending:
        print(f"all {len(FIXES)} fixes already applied; nothing written")
        return EXIT_OK
    for path, text in new_texts.items():
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    print(f"applied {len(pending)} fixes to {len(new_texts)} files")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
