"""The leaf of :mod:`initbench.data`: a :class:`Dataset` (a train/test split ready for training),
the base classes of registered datasets, the :data:`DATASETS` registry, and the check that a
dataset fits in host memory. Every dataset module imports this one only.

Synthetic datasets draw train and test independently: the data seed is split (numpy
``SeedSequence``) into independent random states for the train draw, the test draw, and whatever
the two must share (blob centers, the teacher network). Independent draws of continuous inputs
are disjoint, and each split keeps the class balance its generator gives (half/half for circles).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from pydantic import Field

from initbench.core.errors import InitbenchError
from initbench.core.registry import Component, Registry

Task = Literal["binary", "multiclass", "regression"]

#: Seed of the fixed train/test split of data that comes as one pool (digits, an .npz file without
#: test arrays). It is not the data seed: every run tests on the same rows, so results compare.
FIXED_SPLIT_SEED = 0


def task_for(n_classes: int | None) -> Task:
    """The task of a dataset with ``n_classes`` classes: None means regression."""
    if n_classes is None:
        return "regression"
    return "binary" if n_classes == 2 else "multiclass"


# eq=False: the fields are arrays, and comparing arrays field by field has no single truth value.
@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split, ready for training (float32 features).

    Attributes:
        name: the spec it was loaded from, in canonical form (``circles:noise=0.1``), or the .npz path.
        task: binary, multiclass or regression.
        x_train: float32 [n_train, d].
        y_train: int64 [n_train] class labels 0..C−1 (binary, multiclass), or float32
            [n_train, k] targets (regression).
        x_test: float32 [n_test, d].
        y_test: like ``y_train``, with n_test rows.
        n_classes: 2 for binary, C for multiclass, None for regression.
        image_shape: (channels, height, width) when the features are an image's pixels, for conv
            nets; None for plain feature vectors.
    """

    name: str
    task: Task
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int | None
    image_shape: tuple[int, int, int] | None = None

    @classmethod
    def from_arrays(
        cls,
        name: str,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_test: np.ndarray,
        y_test: np.ndarray,
        n_classes: int | None,
        image_shape: tuple[int, int, int] | None = None,
    ) -> Dataset:
        """A dataset from numeric arrays of any dtype, cast as above; the task follows from ``n_classes``."""

        def targets(y: np.ndarray) -> np.ndarray:
            if n_classes is None:
                return np.asarray(y, dtype=np.float32).reshape(len(y), -1)
            return np.asarray(y, dtype=np.int64)

        with np.errstate(over="ignore"):  # values too large for float32 become inf, refused below
            dataset = cls(
                name=name,
                task=task_for(n_classes),
                x_train=np.asarray(x_train, dtype=np.float32),
                y_train=targets(y_train),
                x_test=np.asarray(x_test, dtype=np.float32),
                y_test=targets(y_test),
                n_classes=n_classes,
                image_shape=image_shape,
            )
        for field in ("x_train", "y_train", "x_test", "y_test"):
            bad = int(np.count_nonzero(~np.isfinite(getattr(dataset, field))))
            if bad:
                raise InitbenchError(f"Dataset '{name}': {field} has {bad} value(s) that are NaN or infinite in float32.", hint="Give the dataset smaller options.")
        return dataset

    @property
    def input_dim(self) -> int:
        """Features per example, d."""
        return int(self.x_train.shape[1])

    @property
    def output_dim(self) -> int:
        """Network outputs: one logit (binary), C logits (multiclass) or k targets (regression)."""
        if self.n_classes is None:
            return int(self.y_train.shape[1])
        return 1 if self.n_classes == 2 else self.n_classes


#: Peak memory of building a dataset, in float64 copies of its arrays: the generator's draws and
#: temporaries, the float32 copies, and the finiteness masks.
BUILD_COPIES = 4


class DatasetSource(Component):
    """Base class of every registered dataset: the pydantic fields are its options."""

    def load(self, seed: int) -> Dataset:
        """The dataset drawn with the data seed ``seed`` (≥ 0)."""
        raise NotImplementedError

    def load_bytes(self) -> int:
        """Peak bytes :meth:`load` allocates, from the options alone (checked before loading)."""
        raise NotImplementedError


DATASETS: Registry[type[DatasetSource]] = Registry("dataset")


class RandomStates(NamedTuple):
    """Independent random states derived from one data seed (32-bit: scikit-learn's ``random_state`` range)."""

    train: int
    test: int
    shared: int  # for what train and test have in common: blob centers, the teacher's weights


def random_states(seed: int) -> RandomStates:
    """Split the data seed into independent random states with numpy's ``SeedSequence``.

    Seeds 0, 1, 2, ... give statistically independent streams, which consecutive integer seeds
    passed straight to each generator would not guarantee.
    """
    children = np.random.SeedSequence(seed).spawn(len(RandomStates._fields))
    return RandomStates(*(int(child.generate_state(1)[0]) for child in children))


class Synthetic(DatasetSource):
    """Base of generated datasets: train and test are independent draws from one distribution."""

    n_train: int = Field(default=300, ge=1)
    n_test: int = Field(default=100, ge=1)

    def n_classes(self) -> int | None:
        """Number of classes (2 unless the dataset says otherwise); None for regression."""
        return 2

    def values_per_row(self) -> int:
        """Numbers :meth:`sample` computes per row: 2 features and a label, unless the dataset says otherwise."""
        return 3

    def load_bytes(self) -> int:
        return (self.n_train + self.n_test) * self.values_per_row() * 8 * BUILD_COPIES

    def sample(self, n: int, random_state: int, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` inputs and their targets drawn with ``random_state``.

        ``shared_state`` draws what train and test share, so it is the same for both calls.
        """
        raise NotImplementedError

    def load(self, seed: int) -> Dataset:
        states = random_states(seed)
        x_train, y_train = self.sample(self.n_train, states.train, states.shared)
        x_test, y_test = self.sample(self.n_test, states.test, states.shared)
        return Dataset.from_arrays(self.spec(), x_train, y_train, x_test, y_test, self.n_classes())


def check_host_memory(size: int, what: str, hint: str) -> None:
    """Refuse to build ``what`` if its ``size`` bytes would not fit in free CPU memory."""
    # Deferred for start-up time: torch, which core.runtime imports too, takes seconds to load.
    import torch

    # Deferred for start-up time: loads torch.
    from initbench.core.runtime import available_memory, format_bytes

    free = available_memory(torch.device("cpu"))
    if size > 0.9 * free:
        raise InitbenchError(f"{what} needs about {format_bytes(size)} of memory to load, but the CPU has {format_bytes(free)} free.", hint=hint)
