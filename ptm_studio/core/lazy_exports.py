"""A package's names that load their module on first use (PEP 562): the window imports the
packages for what needs no torch, and must appear before torch has loaded (issue 14, B5)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def loaded_on_first_use(
    package_globals: dict[str, Any], sources: Mapping[str, str]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``sources[name]`` (a module's dotted name) when
    ``name`` is first asked for, and keeps the value in the package from then on."""

    def __getattr__(name: str) -> Any:
        module_name = sources.get(name)
        if module_name is None:
            raise AttributeError(
                f"module {package_globals['__name__']!r} has no attribute {name!r}"
            )
        value = getattr(importlib.import_module(module_name), name)
        package_globals[name] = value  # asked for once
        return value

    return __getattr__
