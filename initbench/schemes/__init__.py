"""Weight-initialization schemes, registered by name in :data:`~initbench.schemes.base.SCHEMES`.

timm's pattern: :mod:`~initbench.schemes.base` is the leaf (the registry, :class:`InitScheme`, fans
and gains); each module below registers its schemes and imports only the leaf; this ``__init__``
imports them all, so that the registry is complete whenever any scheme module is imported.

May import core, nets and theory.
"""

# In registration order, which is the order `initbench list schemes` shows.
from initbench.schemes import classic, scaling, structured, isometric, lsuv, whole_model, checkpoint, specs  # noqa: F401  # isort: skip
