"""A user's dataset from an ``.npz`` file (``numpy.savez``): read without unpickling, its size
checked from the array headers before anything is loaded, and its arrays checked one by one, so
that every problem is reported with the file's name.
"""

from __future__ import annotations

import os
import stat
import zipfile
from typing import Any

import numpy as np

from initbench.core.errors import InitbenchError
from initbench.core.registry import nearest
from initbench.data.base import BUILD_COPIES, FIXED_SPLIT_SEED, Dataset, check_host_memory

#: Share of an .npz file's rows held out as test when the file has no ``X_test`` and ``y_test``.
NPZ_TEST_FRACTION = 0.25
#: The arrays an .npz dataset may hold.
NPZ_ARRAYS = ("X", "y", "X_test", "y_test")


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
    from sklearn.model_selection import train_test_split  # deferred for start-up time: scikit-learn takes over a second

    try:
        return tuple(
            train_test_split(x, y, test_size=NPZ_TEST_FRACTION, stratify=y if classification else None, random_state=FIXED_SPLIT_SEED)
        )
    except ValueError as error:
        raise _npz_error(path, f"cannot hold out {NPZ_TEST_FRACTION:.0%} of {len(x)} rows as test: {error}", hint="Add X_test and y_test to the file.") from None
