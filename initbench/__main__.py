"""``python -m initbench`` runs the CLI (signals handled first, see :mod:`initbench.core.signals`)."""

from initbench.cli.entry import main

main()
