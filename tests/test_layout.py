"""The package's shape: the core (everything outside ``fairseq_seqvae/cli``) never
imports the command-line tools, and no two modules import each other, directly or
through others. Read from the source with ``ast``, so hidden imports inside functions
count too."""

import ast
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parents[1] / "fairseq_seqvae"
CLI = "fairseq_seqvae.cli"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, modules: Set[str]) -> Set[str]:
    """The package's modules that ``path`` imports (``from a import b`` counts as
    ``a.b`` when that is a module, else as ``a``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules)
    found.discard(name)
    return found


def import_graph() -> Dict[str, Set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, modules) for p in paths}


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One import cycle as [a, b, ..., a], or [] when there is none."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def is_cli(module: str) -> bool:
    return module == CLI or module.startswith(CLI + ".")


def test_the_graph_sees_the_imports_that_matter():
    """The reader is not blind: known edges of the package are found."""
    graph = import_graph()
    assert "fairseq_seqvae.scoring" in graph["fairseq_seqvae.hub"]
    assert "fairseq_seqvae.decoding" in graph["fairseq_seqvae.hub"]
    assert "fairseq_seqvae.hub" in graph["fairseq_seqvae.cli.evaluate"]
    assert "fairseq_seqvae.aggressive" in graph["fairseq_seqvae.tasks.seqvae_language_modeling"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_core_never_imports_the_commands():
    graph = import_graph()
    offenders = {m: sorted(filter(is_cli, deps)) for m, deps in graph.items()
                 if not is_cli(m) and any(map(is_cli, deps))}
    assert not offenders, f"core modules import fairseq_seqvae.cli: {offenders}"


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)
