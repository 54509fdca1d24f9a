"""API layer: the porcelain (:class:`Repo`) and its typed results."""

from dsv.api.repo import Repo

__all__ = ["Repo"]
