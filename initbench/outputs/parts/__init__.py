"""The report of each kind of run directory, built from its saved files: propagation (forward and
gradients), training, and the small ones (gain, phase, recommend)."""
