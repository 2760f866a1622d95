"""Tests of scripts/patch_fairseq.py on a pristine copy of fairseq 0.12.2's target files."""

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "patch_fairseq.py"

# sha256 of the target files as shipped in the fairseq 0.12.2 sdist
ORIGINAL_SHA256 = {
    "dataclass/configs.py": "3bad79013565db4477ed859ce9778397588c9efaeb7eaaecee1911cc7409dde2",
    "models/transformer/transformer_config.py": "2a8c6eab00c3ac2d03896970ef13c68bf5b0ce454d756dfa04f7211b22fcb0be",
    "dataclass/initialize.py": "35bb8e50614902ad385e467fba4e251c7c5203fbd34398c1974a416c4ddc72d8",
    "data/token_block_dataset.py": "023518dd01e906623ed8d78677ef3b33693d86c5aa22d453a19c096a48cb6a53",
    "data/language_pair_dataset.py": "f3c660f952d5d924fb3c8ce4bcf02857f9b0cab1658ea35fe6bd510e12a710b2",
    "data/data_utils.py": "3cff49d5372bba36cd3c7b5ab88bdd99b0172f4790e417022b572aa8695f92b8",
    "modules/dynamic_crf_layer.py": "024870d3b488187925e92e664c19052490cbc67171b6bd7ba871483aeee71536",
    "checkpoint_utils.py": "fdfbefe5ef9016b1b40e196110e1a87d743cf3a73952711729b6677ea9b58a71",
    "distributed/utils.py": "f01e07f7f12c5e81c9b6ea1735e6b1dc45e43ed6e30fac5dc3844af3cd0d6205",
    "modules/transformer_layer.py": "593fb4d67ce8843932b4a6ad667403e4904ac77065144186bfb3526c91db0a4d",
    "trainer.py": "50424d39b8022d15b3454a5b0c7c0e6238ca5ce601ed9acfff029f6746038410",
    "optim/lr_scheduler/reduce_lr_on_plateau.py": "6616f81b9480208136080f237c7f0ab7336e77b193c9688af4590cc15f23d14c",
}


def _load_script():
    spec = importlib.util.spec_from_file_location("patch_fairseq", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


patch_fairseq = _load_script()
FIXES = patch_fairseq.FIXES
TARGETS = sorted({fix.file for fix in FIXES})


def _read(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def _snapshot(root):
    """{relative path: (bytes, mtime_ns)} of every file under root."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _unfix(text, file):
    for fix in FIXES:
        if fix.file == file:
            for old, new in fix.subs:
                text = text.replace(new, old)
    return text


@pytest.fixture
def installed_dir():
    path = patch_fairseq.installed_fairseq_dir()
    assert path is not None, "fairseq is not installed in this interpreter"
    return path


@pytest.fixture
def pristine(tmp_path, installed_dir):
    """A fake fairseq package: the target files as shipped (fixes reversed), plus a bystander."""
    root = tmp_path / "fairseq"
    for file in TARGETS:
        _write(root / file, _unfix(_read(installed_dir / file), file))
    _write(root / "version.py", '__version__ = "0.12.2"\n')
    _write(root / "bystander.py", "import numpy as np\nx = np.compat.long\n")
    return root


def run(root, *args):
    return patch_fairseq.main(["--fairseq-dir", str(root), *args])


def test_fix_table_is_well_formed():
    assert [fix.number for fix in FIXES] == list(range(1, 13))
    for fix in FIXES:
        assert fix.subs and fix.description
        for old, new in fix.subs:
            # if old were part of new, an applied fix would still look pending
            assert old != new and old not in new


def test_pristine_copy_is_fairseq_0_12_2_as_shipped(pristine):
    assert set(ORIGINAL_SHA256) == set(TARGETS)
    for file, digest in ORIGINAL_SHA256.items():
        assert hashlib.sha256((pristine / file).read_bytes()).hexdigest() == digest, file
    # every fixed text is new to the file, so "applied" cannot be mistaken for "pending"
    for fix in FIXES:
        text = _read(pristine / fix.file)
        for old, new in fix.subs:
            assert text.count(old) >= 1 and new not in text, (fix.number, old)


def test_apply_changes_exactly_the_target_files(pristine, installed_dir, capsys):
    before = _snapshot(pristine)
    assert run(pristine) == 0
    after = _snapshot(pristine)
    changed = {f for f in before if before[f][0] != after[f][0]}
    assert changed == set(TARGETS)
    for fix in FIXES:
        text = _read(pristine / fix.file)
        for old, new in fix.subs:
            assert old not in text and new in text, (fix.number, old)
    # the installed fairseq was patched by this script: same bytes
    for file in TARGETS:
        assert after[file][0] == (installed_dir / file).read_bytes(), file
    out = capsys.readouterr().out
    assert out.count(" applied ") == len(FIXES) and "already applied" not in out


def test_second_run_is_a_no_op(pristine, capsys):
    assert run(pristine) == 0
    first = _snapshot(pristine)
    capsys.readouterr()
    assert run(pristine) == 0
    assert _snapshot(pristine) == first  # bytes and mtimes
    out = capsys.readouterr().out
    assert out.count(" already applied ") == len(FIXES)
    assert "all 12 fixes already applied; nothing written" in out


def test_check_exit_codes(pristine, capsys):
    before = _snapshot(pristine)
    assert run(pristine, "--check") == 1
    assert _snapshot(pristine) == before
    assert "12 of 12 fixes pending" in capsys.readouterr().out
    assert run(pristine) == 0
    assert run(pristine, "--check") == 0


def test_partially_applied_copy_is_completed(pristine, capsys):
    fix4 = next(fix for fix in FIXES if fix.number == 4)
    path = pristine / fix4.file
    old, new = fix4.subs[0]
    _write(path, _read(path).replace(old, new))
    assert run(pristine, "--check") == 1
    out = capsys.readouterr().out
    assert "11 of 12 fixes pending" in out
    assert "fix  4 already applied" in out
    assert run(pristine) == 0
    assert run(pristine, "--check") == 0


@pytest.mark.parametrize("args", [(), ("--check",)])
def test_refuses_other_fairseq_version(pristine, args, capsys):
    _write(pristine / "version.py", '__version__ = "0.12.3"\n')
    before = _snapshot(pristine)
    assert run(pristine, *args) == 2
    assert _snapshot(pristine) == before
    assert "REFUSED" in capsys.readouterr().out


def test_refuses_other_installed_version(pristine, monkeypatch, capsys):
    # without --fairseq-dir the version comes from the installed package's metadata
    monkeypatch.setattr(patch_fairseq, "installed_fairseq_dir", lambda: pristine)
    monkeypatch.setattr(patch_fairseq.importlib.metadata, "version", lambda name: "0.13.0")
    before = _snapshot(pristine)
    assert patch_fairseq.main([]) == 2
    assert _snapshot(pristine) == before
    assert "fairseq 0.13.0" in capsys.readouterr().out


@pytest.mark.parametrize("number", range(1, 13))
@pytest.mark.parametrize("args", [(), ("--check",)])
def test_refuses_when_a_target_text_is_missing(pristine, number, args, capsys):
    fix = next(fix for fix in FIXES if fix.number == number)
    old, _ = fix.subs[-1]
    path = pristine / fix.file
    _write(path, _read(path).replace(old, "# (edited away)\n"))
    before = _snapshot(pristine)
    assert run(pristine, *args) == 2
    assert _snapshot(pristine) == before  # not even the files whose targets are fine
    out = capsys.readouterr().out
    assert "REFUSED" in out and f"fix {number}: {fix.file}" in out


def test_refuses_when_a_target_file_is_missing(pristine):
    (pristine / "distributed" / "utils.py").unlink()
    before = _snapshot(pristine)
    assert run(pristine) == 2
    assert _snapshot(pristine) == before


def test_command_line(pristine):
    def cli(*args):
        cmd = [sys.executable, str(SCRIPT), "--fairseq-dir", str(pristine), *args]
        return subprocess.run(cmd, capture_output=True, text=True)

    assert cli("--check").returncode == 1
    result = cli()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "applied 12 fixes to 12 files" in result.stdout
    assert cli("--check").returncode == 0


def test_installed_fairseq_is_patched_and_imports():
    check = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    code = (
        "import fairseq\n"
        "from fairseq.models.transformer_lm import TransformerLanguageModel\n"
        "from fairseq.dataclass.initialize import hydra_init\n"
        "hydra_init()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
