"""Datasets for training runs: scikit-learn's generators and digits, a teacher net, and ``.npz``
files, registered by name in :data:`~initbench.data.base.DATASETS`.

timm's pattern: :mod:`~initbench.data.base` is the leaf (the registry, :class:`Dataset` and the
base classes); each dataset module registers its datasets and imports only the leaf; this
``__init__`` imports them all, so that the registry is complete whenever any data module is
imported. :mod:`~initbench.data.loading` loads a dataset by its spec, :mod:`~initbench.data.npz`
reads a user's file.

May import :mod:`initbench.core` only.
"""

# In registration order, which is the order `initbench list datasets` shows.
from initbench.data import synthetic, digits, teacher  # noqa: F401  # isort: skip
