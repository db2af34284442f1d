"""``python -m initbench`` runs the CLI (signals handled first, see :mod:`initbench.signals`)."""

from initbench.signals import main

main()
