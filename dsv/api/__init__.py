"""API layer: the porcelain (:class:`Repo`) and its typed results.

``Repo`` is loaded on first use (PEP 562), so that ``dsv status`` can import
:mod:`dsv.api.status` without every other command's module.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dsv.api.repo import Repo

__all__ = ["Repo"]


def __getattr__(name: str) -> object:
    if name == "Repo":
        from dsv.api.repo import Repo

        return Repo
    raise AttributeError(f"module 'dsv.api' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
