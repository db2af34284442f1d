"""Datasets for short training runs, registered by name and drawn from a data seed.

A dataset spec is a registered ``NAME``, ``NAME:key=value,...``, a mapping ``{name: NAME, key:
value}``, or the path of a user's ``.npz`` file. Loading takes the *data* seed, which is separate
from the init seed so that one draw of the data can be trained from many initializations.

Synthetic datasets draw train and test independently: the data seed is split (numpy
``SeedSequence``) into independent random states for the train draw, the test draw, and whatever
the two must share (blob centers, the teacher network). Independent draws of continuous inputs
are disjoint, and each split keeps the class balance its generator gives (half/half for circles).

scikit-learn is imported inside the loaders: it takes over a second to import, and listing the
registry (``initbench list``) should not pay for it.

Example:
    >>> data = load_dataset("circles:noise=0.1", seed=0)
    >>> data.x_train.shape, data.task, data.output_dim
    ((300, 2), 'binary', 1)
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import Field

from initbench.core.errors import InitbenchError
from initbench.core.registry import Component, Registry, build, nearest, parse_spec

Task = Literal["binary", "multiclass", "regression"]

#: Seed of the fixed train/test split of data that comes as one pool (digits, an .npz file without
#: test arrays). It is not the data seed: every run tests on the same rows, so results compare.
FIXED_SPLIT_SEED = 0
#: Share of an .npz file's rows held out as test when the file has no ``X_test`` and ``y_test``.
NPZ_TEST_FRACTION = 0.25
#: The arrays an .npz dataset may hold.
NPZ_ARRAYS = ("X", "y", "X_test", "y_test")
#: Size of scikit-learn's digits dataset.
DIGITS_SAMPLES = 1797


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


@DATASETS.register("circles")
class Circles(Synthetic):
    """Two concentric circles (scikit-learn ``make_circles``): binary, 2-D, 300 train / 100 test.

    Label 0 is the outer circle (radius 1), label 1 the inner one (radius ``factor``), half of
    each split on each. The defaults are the deeplearning.ai "Initialization" exercise's: 300
    training and 100 test points with noise 0.05 (and scikit-learn's default factor 0.8).
    scikit-learn spaces the angles evenly, so with ``noise=0`` test points can repeat training points.
    """

    formula = "x = r·(cos θ, sin θ) + noise·ε,  r = 1 (y = 0) or factor (y = 1),  θ evenly spaced"
    noise: float = Field(default=0.05, ge=0.0)
    factor: float = Field(default=0.8, ge=0.0, lt=1.0)

    def sample(self, n: int, random_state: int, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import make_circles

        return make_circles(n, noise=self.noise, factor=self.factor, random_state=random_state)


@DATASETS.register("moons")
class Moons(Synthetic):
    """Two interleaving half circles (scikit-learn ``make_moons``): binary, 2-D, 300 train / 100 test.

    Label 0 is the upper moon (unit circle about the origin), label 1 the lower one (unit circle
    about (1, 0.5)), half of each split on each. Inputs span about [−1, 2] × [−0.5, 1].
    As with circles, ``noise=0`` puts the points on a fixed grid, shared by train and test.
    """

    formula = "x = (cos t, sin t) (y = 0) or (1 − cos t, 0.5 − sin t) (y = 1), t ∈ [0, π] evenly spaced, + noise·ε"
    noise: float = Field(default=0.1, ge=0.0)

    def sample(self, n: int, random_state: int, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import make_moons

        return make_moons(n, noise=self.noise, random_state=random_state)


@DATASETS.register("spirals")
class Spirals(Synthetic):
    """Two interleaved spirals: binary, 2-D, 300 train / 100 test, half of each split per arm.

    A point at t ~ U(0, 1) along arm y lies at radius t and angle 2π·turns·t + π·y, so the two arms
    are half a turn apart and the inputs lie in the unit disc (plus noise). Both arms start at the
    origin, where no classifier can tell them apart; more ``turns`` make the task harder.
    """

    formula = "x = t·(cos θ, sin θ) + noise·ε,  θ = 2π·turns·t + π·y,  t ~ U(0, 1)"
    noise: float = Field(default=0.05, ge=0.0)
    turns: float = Field(default=1.5, gt=0.0)

    def sample(self, n: int, random_state: int, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(random_state)
        labels = rng.permutation(np.arange(n) % 2)
        t = rng.uniform(0.0, 1.0, n)
        angle = 2 * np.pi * self.turns * t + np.pi * labels
        points = t[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        return points + self.noise * rng.standard_normal((n, 2)), labels


@DATASETS.register("xor")
class Xor(Synthetic):
    """The XOR problem: binary, 2-D, 300 train / 100 test; no linear model can solve it.

    Inputs are uniform on [−1, 1]²; the label is 1 where x₁ and x₂ have the same sign. The label
    is decided on the clean input, before ``noise`` blurs it, so noise makes labels overlap.
    """

    formula = "x ~ U([−1, 1]²),  y = [x₁·x₂ > 0],  then x ← x + noise·ε"
    noise: float = Field(default=0.0, ge=0.0)

    def sample(self, n: int, random_state: int, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(random_state)
        clean = rng.uniform(-1.0, 1.0, (n, 2))
        labels = (clean[:, 0] * clean[:, 1] > 0).astype(np.int64)
        return clean + self.noise * rng.standard_normal((n, 2)), labels


@DATASETS.register("blobs")
class Blobs(Synthetic):
    """Gaussian blobs (scikit-learn ``make_blobs``): multiclass, 2-D, 300 train / 100 test.

    The ``centers`` cluster centers are drawn once per data seed, uniformly in [−10, 10]²
    (scikit-learn's default box), and shared by train and test; each split divides its points
    evenly among them. Inputs are standardized with the mixture's own mean and std, computed from
    the centers and ``cluster_std`` rather than from a sample, so both splits get the same
    transform. Two centers make a binary task (one logit), like any two-class dataset.
    """

    formula = "x ~ N(c_y, cluster_std²·I),  c_k ~ U([−10, 10]²),  then standardized"
    centers: int = Field(default=3, ge=2)
    cluster_std: float = Field(default=1.0, ge=0.0)

    def n_classes(self) -> int | None:
        return self.centers

    def sample(self, n: int, random_state: int, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import make_blobs

        centers = np.random.default_rng(shared_state).uniform(-10.0, 10.0, (self.centers, 2))
        points, labels = make_blobs(n, centers=centers, cluster_std=self.cluster_std, random_state=random_state)
        # Law of total variance for an equal-weight mixture: Var x = cluster_std² + Var(centers).
        std = np.sqrt(self.cluster_std**2 + centers.var(axis=0))
        return (points - centers.mean(axis=0)) / std, labels


@DATASETS.register("digits")
class Digits(DatasetSource):
    """scikit-learn's 8×8 handwritten digits: 10 classes, 64 features, 1347 train / 450 test.

    The 1797 images ship with scikit-learn (no download). The split (``test_fraction``,
    stratified by digit) is fixed and ignores the data seed: every run trains and tests on the same
    images, so results from different runs compare. Pixels (0–16) are standardized with a
    ``StandardScaler`` fitted on the training split only; pixels that are constant there (the blank
    corners) become 0.

    ``classes`` keeps some digits only, relabeled 0..k−1 in increasing order: ``0-4`` (a range),
    ``7`` or a list ``[1, 7]`` (two classes make a binary task). The split and the standardization
    are the full dataset's, so an image has the same features in every subset (a net trained on
    ``0-4`` sees ``5-9`` as the same kind of input).
    """

    formula = "x = (pixels − mean_train) / std_train,  y ∈ {0, …, 9} (or the kept classes, renumbered 0..k−1)"
    test_fraction: float = Field(default=0.25, gt=0.0, lt=1.0)
    classes: str | int | list[int] | None = None

    def model_post_init(self, context: object) -> None:
        # A stratified split needs every digit on both sides.
        n_test = int(np.ceil(self.test_fraction * DIGITS_SAMPLES))
        if min(n_test, DIGITS_SAMPLES - n_test) < 10:
            raise ValueError(f"test_fraction={self.test_fraction} leaves fewer than 10 of the {DIGITS_SAMPLES} images on one side")
        self.kept_classes()

    def kept_classes(self) -> list[int]:
        """The digits ``classes`` keeps, sorted: all ten by default."""
        if self.classes is None:
            return list(range(10))
        if isinstance(self.classes, str):
            first, dash, last = self.classes.partition("-")
            if not dash or not first.strip().isdigit() or not last.strip().isdigit():
                raise ValueError(f"classes '{self.classes}' is not a range like 0-4, a digit, or a list of digits")
            kept = list(range(int(first), int(last) + 1))
        else:
            kept = [self.classes] if isinstance(self.classes, int) else list(self.classes)
        if len(set(kept)) < 2 or not all(0 <= digit <= 9 for digit in kept):
            raise ValueError(f"classes {self.classes} must name at least two different digits from 0 to 9")
        return sorted(set(kept))

    def load_bytes(self) -> int:
        return DIGITS_SAMPLES * 65 * 8 * BUILD_COPIES

    def load(self, seed: int) -> Dataset:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        x, y = load_digits(return_X_y=True)
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=self.test_fraction, stratify=y, random_state=FIXED_SPLIT_SEED)
        scaler = StandardScaler().fit(x_train)
        kept = np.array(self.kept_classes())
        train, test = np.isin(y_train, kept), np.isin(y_test, kept)
        return Dataset.from_arrays(
            self.spec(), scaler.transform(x_train)[train], np.searchsorted(kept, y_train[train]),
            scaler.transform(x_test)[test], np.searchsorted(kept, y_test[test]), n_classes=len(kept), image_shape=(1, 8, 8),
        )


@DATASETS.register("teacher")
class Teacher(Synthetic):
    """Regression on a random teacher network: 10 inputs, 1 target, 1000 train / 1000 test.

    The teacher is a one-hidden-layer tanh MLP without biases, its weights N(0, 1/fan_in), drawn
    once per data seed and shared by both splits; inputs are N(0, I). There is no accuracy:
    compare runs by loss. The best achievable test MSE is noise², the teacher's own.
    """

    formula = "y = W₂·tanh(W₁·x) + noise·ε,  x ~ N(0, I),  W_l ~ N(0, 1/fan_in)"
    n_train: int = Field(default=1000, ge=1)
    n_test: int = Field(default=1000, ge=1)
    input_dim: int = Field(default=10, ge=1)
    hidden: int = Field(default=32, ge=1)
    output_dim: int = Field(default=1, ge=1)
    noise: float = Field(default=0.1, ge=0.0)

    def n_classes(self) -> int | None:
        return None

    def values_per_row(self) -> int:
        # x, the hidden layer (x·W₁ᵀ and its tanh), the targets and their noise
        return self.input_dim + 2 * self.hidden + 2 * self.output_dim

    def load_bytes(self) -> int:
        return super().load_bytes() + (self.hidden * (self.input_dim + self.output_dim)) * 8

    def weights(self, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        """The teacher's W₁ [hidden, input_dim] and W₂ [output_dim, hidden], drawn from ``shared_state``."""
        rng = np.random.default_rng(shared_state)
        w1 = rng.normal(0.0, 1.0 / np.sqrt(self.input_dim), (self.hidden, self.input_dim))
        w2 = rng.normal(0.0, 1.0 / np.sqrt(self.hidden), (self.output_dim, self.hidden))
        return w1, w2

    def sample(self, n: int, random_state: int, shared_state: int) -> tuple[np.ndarray, np.ndarray]:
        w1, w2 = self.weights(shared_state)
        rng = np.random.default_rng(random_state)
        # x before ε from one stream: changing the noise level leaves the inputs as they were.
        x = rng.standard_normal((n, self.input_dim))
        return x, np.tanh(x @ w1.T) @ w2.T + self.noise * rng.standard_normal((n, self.output_dim))


def load_dataset(spec: str | os.PathLike[str] | Mapping[str, Any], seed: int) -> Dataset:
    """Load a registered dataset from its spec, or a user's .npz file when the spec is such a path.

    Args:
        spec: ``NAME``, ``NAME:key=value,...``, a mapping ``{name: NAME, key: value}``, or a path
            ending in ``.npz`` (see :func:`load_npz`).
        seed: the data seed (≥ 0), separate from the init seed. Datasets with a fixed split
            (digits, .npz files) ignore it.
    """
    if seed < 0:
        raise InitbenchError(f"Data seed {seed} is negative.", hint="Use a data seed ≥ 0.")
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "name" not in options:
            raise InitbenchError(f"Dataset {options} has no 'name' key.", hint="For example {name: moons, noise: 0.2}.")
        name = str(options.pop("name"))
    else:
        text = os.fspath(spec)
        # Checked before parse_spec, which would split a path like C:\data\set.npz at its colon.
        if text.lower().endswith(".npz"):
            return load_npz(text)
        name, options = parse_spec(text, "dataset")
    if name.lower().endswith(".npz"):
        if options:
            raise InitbenchError(f"Dataset file '{name}' takes no options, got {', '.join(options)}.")
        return load_npz(name)
    try:
        DATASETS.canonical(name)
    except InitbenchError as error:
        raise InitbenchError(error.message, hint=f"{error.hint} Or give the path of an .npz file with arrays X and y.") from None
    source = build(DATASETS, name, options)
    check_host_memory(source.load_bytes(), f"Dataset '{source.spec()}'", "Give it fewer rows or features.")
    return source.load(seed)


def check_host_memory(size: int, what: str, hint: str) -> None:
    """Refuse to build ``what`` if its ``size`` bytes would not fit in free CPU memory."""
    import torch

    from initbench.core.runtime import available_memory, format_bytes  # deferred: engine imports torch

    free = available_memory(torch.device("cpu"))
    if size > 0.9 * free:
        raise InitbenchError(f"{what} needs about {format_bytes(size)} of memory to load, but the CPU has {format_bytes(free)} free.", hint=hint)


def load_npz(path: str | os.PathLike[str]) -> Dataset:
    """A user's dataset from an .npz file (``numpy.savez``) with arrays X, y, and optionally X_test, y_test.

    - ``X``: features [n, d], any numeric dtype (cast to float32).
    - ``y``: integer labels [n] make a classification task: binary for 2 distinct labels, else
      multiclass. The sorted distinct labels are renumbered 0..C−1, so {−1, 1} becomes {0, 1} and
      {3, 5, 9} becomes {0, 1, 2}. Floating-point ``y`` makes a regression task, [n] or [n, k]
      (shape [n] becomes [n, 1]): save labels as integers, as float labels mean regression.
    - ``X_test``, ``y_test``: the test split, shaped like ``X`` and ``y``. Without them a fixed 25%
      of the rows (stratified by label for classification) is held out as test: the same rows
      for every data seed, so that runs compare.

    Raises:
        InitbenchError: naming the file and the problem: missing or unreadable, unexpected or
            missing arrays, wrong shapes or dtypes, NaN or infinite values, fewer than 2 classes,
            or test labels never seen in training.
    """
    shown = os.fspath(path)
    arrays = _read_npz(shown)
    _check_names(arrays, shown)
    x, y = arrays["X"], arrays["y"]
    classification = _check_xy(x, y, "X", "y", shown)
    if "X_test" in arrays:
        x_test, y_test = arrays["X_test"], arrays["y_test"]
        if _check_xy(x_test, y_test, "X_test", "y_test", shown) != classification:
            raise _npz_error(shown, f"y has dtype {y.dtype} but y_test has dtype {y_test.dtype}.", hint="Use integer labels for both, or floats for both.")
        if x_test.shape[1] != x.shape[1]:
            raise _npz_error(shown, f"X_test has {x_test.shape[1]} features but X has {x.shape[1]}.")
        if not classification and _targets(y_test) != _targets(y):
            raise _npz_error(shown, f"y_test has {_targets(y_test)} target(s) per row but y has {_targets(y)}.")
    classes = np.unique(y) if classification else None
    if classes is not None and len(classes) < 2:
        raise _npz_error(shown, f"y has a single class ({classes[0]}); classification needs at least 2.")
    if "X_test" not in arrays:
        x, x_test, y, y_test = _hold_out(x, y, classification, shown)
    if classes is None:
        return Dataset.from_arrays(shown, x, y, x_test, y_test, n_classes=None)
    unseen = np.setdiff1d(y_test, classes)
    if len(unseen):
        raise _npz_error(shown, f"y_test has labels that y never has: {unseen.tolist()}.", hint="Every test class needs training examples.")
    return Dataset.from_arrays(shown, x, np.searchsorted(classes, y), x_test, np.searchsorted(classes, y_test), n_classes=len(classes))


def _npz_error(path: str, message: str, hint: str | None = None) -> InitbenchError:
    """A user error about the .npz file at ``path``."""
    return InitbenchError(f"Dataset file '{path}': {message}", hint=hint)


def _targets(y: np.ndarray) -> int:
    """Regression targets per row: 1 for y of shape [n], k for [n, k]."""
    return 1 if y.ndim == 1 else int(y.shape[1])


def _read_npz(path: str) -> dict[str, np.ndarray]:
    """Every array in the file, read without unpickling (so a file cannot run code)."""
    try:
        is_file = stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        is_file = False
    except OSError as error:  # a symlink loop, no permission, a name too long
        raise _npz_error(path, f"cannot be opened ({error.strerror or error}).") from None
    if not is_file:
        raise _npz_error(path, "the file does not exist.", hint="Give the path of an .npz file with arrays X and y (numpy.savez), or a registered dataset name.")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as file:
            single = file.read(6) == b"\x93NUMPY"  # the magic string of numpy.save's .npy format
        what = "holds a single array (numpy.save)" if single else "is not an .npz archive"
        raise _npz_error(path, f"{what}.", hint="Save the data with numpy.savez(path, X=..., y=...).")
    headers = npz_headers(path)
    check_host_memory(sum(int(np.prod(shape)) * dtype.itemsize for shape, dtype in headers.values()) * BUILD_COPIES, f"Dataset file '{path}'", "Use a smaller file.")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for key in archive.files:
                arrays[key] = archive[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        # ValueError includes object arrays, which numpy will not read without unpickling.
        raise _npz_error(path, f"cannot be read ({error}).", hint="Save numeric arrays with numpy.savez(path, X=..., y=...).") from None
    return arrays


def npz_headers(path: str) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """Each array's shape and dtype in the .npz at ``path``, from the .npy headers alone: nothing is
    decompressed or loaded, so a file that would not fit in memory is refused before it is read."""
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                with archive.open(member) as stream:
                    version = np.lib.format.read_magic(stream)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
                    else:  # 3.0 only differs for structured dtypes, which are no numeric arrays
                        raise ValueError(f"array {member} has .npy format {version[0]}.{version[1]}, not 1.0 or 2.0")
                headers[member.removesuffix(".npy")] = (shape, dtype)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise _npz_error(path, f"cannot be read ({error}).", hint="Save numeric arrays with numpy.savez(path, X=..., y=...).") from None
    return headers


def _check_names(arrays: dict[str, np.ndarray], path: str) -> None:
    """Only the known arrays, X and y among them, and test arrays in pairs."""
    expected = list(NPZ_ARRAYS)
    for key in arrays:
        if key not in expected:
            same_but_case = next((name for name in expected if name.lower() == key.lower()), None)
            suggestion = same_but_case or nearest(key, expected)
            did_you_mean = f" Did you mean '{suggestion}'?" if suggestion else ""
            raise _npz_error(path, f"unexpected array '{key}'.{did_you_mean}", hint=f"An .npz dataset holds {', '.join(expected)} (the last two optional).")
    for key in ("X", "y"):
        if key not in arrays:
            held = ", ".join(arrays) or "nothing"
            raise _npz_error(path, f"no array '{key}' (it holds {held}).", hint="Save it with numpy.savez(path, X=..., y=...).")
    if ("X_test" in arrays) != ("y_test" in arrays):
        given, missing = ("X_test", "y_test") if "X_test" in arrays else ("y_test", "X_test")
        raise _npz_error(path, f"has {given} but no {missing}.", hint="Give both test arrays, or neither to hold out 25% of X, y as test.")


def _check_xy(x: np.ndarray, y: np.ndarray, x_name: str, y_name: str, path: str) -> bool:
    """Shapes, dtypes and finiteness of one split's arrays; True when ``y`` holds class labels."""
    if x.ndim != 2:
        raise _npz_error(path, f"{x_name} must be 2-D [samples, features], got shape {x.shape}.", hint=f"Reshape it, e.g. {x_name}.reshape(len({x_name}), -1).")
    if x.dtype.kind not in "biuf":
        raise _npz_error(path, f"{x_name} has dtype {x.dtype}; features must be numbers.")
    if len(x) == 0:
        raise _npz_error(path, f"{x_name} has no rows.")
    if x.shape[1] == 0:
        raise _npz_error(path, f"{x_name} has no features (shape {x.shape}).", hint=f"Save {x_name} as [samples, features] with at least one feature.")
    classification = y.dtype.kind in "biu"
    if y.dtype.kind not in "biuf":
        raise _npz_error(path, f"{y_name} has dtype {y.dtype}; use integer labels (classification) or floats (regression).")
    if classification and y.ndim != 1:
        raise _npz_error(path, f"{y_name} holds integer labels, so it must be 1-D [samples], got shape {y.shape}.")
    if not classification and y.ndim not in (1, 2):
        raise _npz_error(path, f"{y_name} must be [samples] or [samples, targets], got shape {y.shape}.")
    if len(x) != len(y):
        raise _npz_error(path, f"{x_name} has {len(x)} rows but {y_name} has {len(y)}.")
    for name, array in ((x_name, x), (y_name, y)):
        # Checked in float32, the training dtype, so values too large for it count as infinite.
        with np.errstate(over="ignore", invalid="ignore"):
            bad = int(np.count_nonzero(~np.isfinite(array.astype(np.float32))))
        if bad:
            raise _npz_error(path, f"{name} has {bad} value(s) that are NaN or infinite in float32.", hint="Drop or impute them before saving.")
    return classification


def _hold_out(x: np.ndarray, y: np.ndarray, classification: bool, path: str) -> tuple[np.ndarray, ...]:
    """The fixed 25% test split of a file without test arrays: (x_train, x_test, y_train, y_test)."""
    from sklearn.model_selection import train_test_split

    try:
        return tuple(
            train_test_split(x, y, test_size=NPZ_TEST_FRACTION, stratify=y if classification else None, random_state=FIXED_SPLIT_SEED)
        )
    except ValueError as error:
        raise _npz_error(path, f"cannot hold out {NPZ_TEST_FRACTION:.0%} of {len(x)} rows as test: {error}", hint="Add X_test and y_test to the file.") from None
