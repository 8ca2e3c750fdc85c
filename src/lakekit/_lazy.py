"""Lazy package attributes: a public name is imported from its module on first use.

Packages whose ``import`` must stay cheap (``lakekit``, ``lakekit.triggers``,
``lakekit.testing``) list ``name -> module`` and resolve names in their module ``__getattr__``
through :func:`load_lazy`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["load_lazy"]


def load_lazy(
    package: str, modules: Mapping[str, str], namespace: MutableMapping[str, Any], name: str
) -> Any:
    """Attribute ``name`` of ``package``, imported from module ``modules[name]`` and cached in
    the package's ``namespace`` (its ``globals()``), so only the first lookup imports.

    Raises:
        AttributeError: ``name`` is not one of ``modules``.
    """
    module = modules.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    namespace[name] = value
    return value
