"""``python -m dsv`` runs the CLI."""

from dsv.cli import run

run()
