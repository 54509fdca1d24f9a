"""dsv: git-style version control for machine-learning datasets.

Quick use::

    import dsv
    repo = dsv.Repo.init("data")        # or dsv.Repo("data") for an existing one
    repo.commit("first snapshot")
    for entry in repo.log():
        print(entry.id[:10], entry.commit.message)

Imports are lazy so that ``dsv --help`` and ``dsv status`` start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["DsvError", "Repo", "__version__", "current_version", "write_parquet"]

if TYPE_CHECKING:
    from dsv.api import Repo
    from dsv.api.parquet import write_parquet
    from dsv.base.errors import DsvError


def current_version(path: str = ".") -> Any:
    """The dataset version checked out at ``path``: commit id, branch, tags and dirty state.

    For training scripts: ``mlflow.log_params(dsv.current_version("data").to_dict())``.
    Returns a :class:`dsv.api.results.VersionInfo`.
    """
    from dsv.api import Repo

    return Repo(path).current_version()


def __getattr__(name: str) -> Any:
    if name == "Repo":
        from dsv.api import Repo

        return Repo
    if name == "write_parquet":
        from dsv.api.parquet import write_parquet

        return write_parquet
    if name == "DsvError":
        from dsv.base.errors import DsvError

        return DsvError
    raise AttributeError(f"module 'dsv' has no attribute {name!r}")
