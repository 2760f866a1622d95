"""A tiny name -> function registry for variants that users choose by flag.

Poolers and KL schedules each keep one. Adding a variant is one new file in the
registry's folder: the folder is imported in sorted order when the package loads.
"""

import importlib
import os
from typing import Callable, Dict


def make_registry(kind: str):
    """Returns ``(registry dict, register decorator)`` for variants of ``kind``."""
    registry: Dict[str, Callable] = {}

    def register(name: str):
        def wrapper(fn: Callable) -> Callable:
            if name in registry:
                raise ValueError(f"duplicate {kind} name {name!r}")
            registry[name] = fn
            return fn

        return wrapper

    return registry, register


def import_folder(init_file: str, package: str) -> None:
    """Imports every public module beside ``init_file`` (sorted, so order is stable)."""
    for fname in sorted(os.listdir(os.path.dirname(init_file))):
        if fname.endswith(".py") and not fname.startswith("_"):
            importlib.import_module(f"{package}.{fname[:-3]}")
