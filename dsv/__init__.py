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


__version__ = "0.2.0"
__all__ = ["DsvError", "DsvFileSystem", "Repo", "__version__", "current_version", "experiment_info", "write_parquet"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dsv.api import Repo
    from dsv.api.fs import DsvFileSystem
    from dsv.api.parquet import write_parquet
    from dsv.base.errors import DsvError


def current_version(path: str = ".") -> Any:
    """The dataset version checked out at ``path``: commit id, branch, tags and dirty state.

    For training scripts: ``mlflow.log_params(dsv.current_version("data").to_dict())``.
    Returns a :class:`dsv.api.results.VersionInfo`.
    """
    from dsv.api import Repo

    return Repo(path).current_version()


def experiment_info(path: str = ".") -> dict[str, Any]:
    """The dataset version at ``path`` as flat parameters for an experiment tracker.

    Keys: ``dsv.repo`` (the repository folder), ``dsv.commit``, ``dsv.branch``,
    ``dsv.tags`` (comma-separated), ``dsv.dirty``, ``dsv.version`` (a short label
    such as ``v2`` or ``main@1a2b3c4d5e+dirty``) and ``dsv.url``, a ``dsv://`` URL
    that reads exactly this commit back. No tracker is imported::

        mlflow.log_params(dsv.experiment_info("data"))                 # MLflow
        wandb.init(config=dsv.experiment_info("data"))                 # Weights & Biases

    >>> import dsv, os, tempfile
    >>> root = tempfile.mkdtemp(); open(os.path.join(root, "a.csv"), "w").write("x\\n") and None
    >>> repo = dsv.Repo.init(root); c = repo.commit("v1"); _ = repo.create_tag("v1")
    >>> info = dsv.experiment_info(root)
    >>> info["dsv.version"], info["dsv.commit"] == c.id, info["dsv.dirty"]
    ('v1', True, False)
    >>> info["dsv.url"] == f"dsv://{c.id}@{repo.root}"
    True
    """
    v = current_version(path)
    return {
        "dsv.repo": v.root,
        "dsv.commit": v.commit,
        "dsv.branch": v.branch,
        "dsv.tags": ",".join(v.tags),
        "dsv.dirty": v.dirty,
        "dsv.version": v.label,
        "dsv.url": f"dsv://{v.commit}@{v.root}" if v.commit else None,
    }


def __getattr__(name: str) -> Any:
    if name == "Repo":
        from dsv.api import Repo

        return Repo
    if name == "DsvFileSystem":
        from dsv.api.fs import DsvFileSystem

        return DsvFileSystem
    if name == "write_parquet":
        from dsv.api.parquet import write_parquet

        return write_parquet
    if name == "DsvError":
        from dsv.base.errors import DsvError

        return DsvError
    raise AttributeError(f"module 'dsv' has no attribute {name!r}")
