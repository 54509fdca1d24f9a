"""Worktree layer: path safety, ignore rules, scanning with a stat cache, snapshots, checkout."""
