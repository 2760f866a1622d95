"""What a user's clone needs and gets: setup.py installs every third-party package the
plugin imports, in versions that admit requirements.txt's pins, and nothing in the
project points outside the repository (no ``../shared``): data paths are arguments and
the documents it cites live in ``docs/``."""

import ast
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cli_utils, package or not
import cli_utils as cu  # noqa: E402

REPO = cu.REPO
# import name -> distribution name, where they differ
DISTRIBUTIONS = {"tensorboardX": "tensorboardx", "PIL": "pillow", "yaml": "pyyaml"}
# installed apart from setup.py on purpose (see its comment): fairseq itself
NOT_IN_SETUP = {"fairseq", "fairseq_cli", "fairseq_seqvae"}


def install_requires():
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            return [Requirement(ast.literal_eval(e)) for e in node.value.elts]
    raise AssertionError("setup.py has no install_requires")


def third_party_imports():
    names = set()
    for path in (REPO / "fairseq_seqvae").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in NOT_IN_SETUP}


def pinned_versions():
    """{distribution: [versions]} of requirements.txt (one per Python-version marker)."""
    pins = {}
    for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            pins.setdefault(req.name.lower(), []).extend(Version(s.version)
                                                         for s in req.specifier)
    return pins


def test_setup_installs_every_imported_package():
    required = {r.name.lower() for r in install_requires()}
    missing = sorted(n for n in third_party_imports()
                     if DISTRIBUTIONS.get(n, n).lower() not in required)
    assert not missing, f"fairseq_seqvae imports {missing}, which setup.py does not install"
    assert "matplotlib" in required  # seqvae-plot, seqvae-compare's figures


def test_setup_admits_the_pinned_versions():
    pins = pinned_versions()
    for req in install_requires():
        for version in pins.get(req.name.lower(), []):
            assert req.specifier.contains(version), \
                f"setup.py's {req} refuses requirements.txt's {req.name}=={version}"


PROJECT_FILES = ["setup.py", "requirements.txt", "requirements-dev.txt"] + [
    str(p.relative_to(REPO)) for folder in ("fairseq_seqvae", "scripts", "examples")
    for p in sorted((REPO / folder).rglob("*")) if p.suffix in (".py", ".sh", ".txt")
]


@pytest.mark.parametrize("name", PROJECT_FILES)
def test_no_path_outside_the_repository(name):
    path = REPO / name
    if not path.is_file():
        pytest.skip(f"no {name}")
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\.\./shared|[\"']shared[\"'],\s*[\"'](data|docs)", text), \
        f"{name} points to ../shared, which a user's clone does not have"
    for doc in re.findall(r"docs/[\w./-]+\.md", text):
        assert (REPO / doc).is_file(), f"{name} cites {doc}, which is not in the repository"


@pytest.mark.parametrize("script", ["benchmark_train.py", "benchmark_eval.py",
                                    "benchmark_methods.py", "benchmark_memory.py"])
def test_benchmarks_ask_for_their_data(script, tmp_path):
    proc = cu.run_fails([sys.executable, REPO / "scripts" / script], tmp_path)
    assert proc.returncode == 2
    assert "the following arguments are required: --data" in proc.stderr


def test_reference_speed_names_a_folder_that_is_not_the_reference(tmp_path):
    """The reference's code is fetched by the user, never shipped: a wrong folder gets a
    message that says what to pass, from the script and through the benchmarks."""
    text = cu.write_lines(tmp_path / "train.txt", ["a b c", "d e"])
    proc = cu.run_fails([sys.executable, REPO / "scripts" / "reference_speed.py",
                         "--code", tmp_path, "--text", text], tmp_path)
    assert f"--code {tmp_path}: not a checkout of jxhe/vae-lagging-encoder" in proc.stderr
    proc = cu.run_fails([sys.executable, REPO / "scripts" / "reference_speed.py",
                         "--code", tmp_path, "--text", text, "--mode", "eval"], tmp_path)
    assert "--mode eval needs --eval-text" in proc.stderr
    proc = cu.run_fails([sys.executable, REPO / "scripts" / "benchmark_train.py",
                         "--data", tmp_path / "none", "--reference", tmp_path,
                         "--archs", "seqvae_lstm_tiny"], tmp_path)
    assert "--reference: no reference size for seqvae_lstm_tiny" in proc.stderr
