"""Maintenance: ``fsck`` (verify and repair) and ``gc`` (prune), over the reachability walk they share."""

from dsv.maintenance.fsck import FsckReport, Repaired, fsck
from dsv.maintenance.gc import GcReport, gc
from dsv.maintenance.reach import Problem, Reachable, ref_roots, walk_reachable

__all__ = ["FsckReport", "GcReport", "Problem", "Reachable", "Repaired", "fsck", "gc", "ref_roots", "walk_reachable"]
