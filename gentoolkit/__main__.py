"""``python -m gentoolkit`` runs the ``gentool`` command line (torchrun uses this too)."""

from gentoolkit.cli import main

main()
