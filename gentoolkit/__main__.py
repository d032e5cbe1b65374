"""``python -m gentoolkit`` runs the ``gentool`` command line (torchrun uses this too)."""

from gentoolkit.cli.main import main

main()
