"""Every registered dataset against its documented contract, and each against its own geometry.

The contract tests are parametrized over the registry, so a new dataset is tested the day it is
added. The geometry is checked from formulas written here (radii, spiral angles, the XOR rule, the
teacher's forward pass), not by calling the generators again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from initbench.core.errors import InitbenchError
from initbench.core.registry import build_from_spec
from initbench.data.base import DATASETS, Dataset, random_states
from initbench.data.loading import load_dataset
from initbench.data.teacher import Teacher

#: Datasets whose data and split are fixed: the data seed does not change them.
FIXED_DATA = {"digits"}
DIGITS_TOTAL, DIGITS_FEATURES = 1797, 64
NAMES = DATASETS.names()


def arrays(data: Dataset) -> tuple[np.ndarray, ...]:
    return data.x_train, data.y_train, data.x_test, data.y_test


@pytest.fixture(scope="module", params=NAMES)
def loaded(request: pytest.FixtureRequest) -> tuple[str, Dataset]:
    """Each registered dataset with its default options, data seed 0 (loaded once per module)."""
    return request.param, load_dataset(request.param, seed=0)


def test_every_dataset_is_documented() -> None:
    for name, entry in DATASETS:
        assert entry.summary(), f"{name} needs a docstring whose first line describes it"
        assert entry.formula, f"{name} needs a formula"


def test_every_dataset_has_the_documented_shapes_and_dtypes(loaded: tuple[str, Dataset]) -> None:
    name, data = loaded
    source = build_from_spec(DATASETS, name)
    assert data.name == name
    n_train, n_test, d = len(data.x_train), len(data.x_test), data.input_dim
    assert data.x_train.dtype == data.x_test.dtype == np.float32
    assert data.x_train.shape == (n_train, d) and data.x_test.shape == (n_test, d)
    assert len(data.y_train) == n_train and len(data.y_test) == n_test
    if "n_train" in source.option_names():
        assert (n_train, n_test) == (source.n_train, source.n_test)
    for array in arrays(data):
        assert np.isfinite(array).all()
    if data.task == "regression":
        assert data.n_classes is None
        assert data.y_train.dtype == data.y_test.dtype == np.float32
        assert data.y_train.shape == (n_train, data.output_dim) and data.y_test.shape == (n_test, data.output_dim)
    else:
        assert data.task == ("binary" if data.n_classes == 2 else "multiclass")
        assert data.output_dim == (1 if data.task == "binary" else data.n_classes)
        assert data.y_train.dtype == data.y_test.dtype == np.int64
        assert data.y_train.shape == (n_train,) and data.y_test.shape == (n_test,)
        # Every class appears in training, and no label falls outside 0..C−1.
        assert set(data.y_train.tolist()) == set(range(data.n_classes))
        assert set(data.y_test.tolist()) <= set(range(data.n_classes))


def test_train_and_test_are_disjoint(loaded: tuple[str, Dataset]) -> None:
    _, data = loaded
    train_rows = {row.tobytes() for row in data.x_train}
    assert not any(row.tobytes() in train_rows for row in data.x_test)


def test_the_same_seed_gives_the_same_arrays(loaded: tuple[str, Dataset]) -> None:
    name, data = loaded
    for first, second in zip(arrays(data), arrays(load_dataset(name, seed=0))):
        np.testing.assert_array_equal(first, second)


def test_another_seed_gives_other_arrays_unless_the_data_is_fixed(loaded: tuple[str, Dataset]) -> None:
    name, data = loaded
    other = load_dataset(name, seed=1)
    for first, second in zip(arrays(data), arrays(other)):
        if name in FIXED_DATA:
            np.testing.assert_array_equal(first, second)
        elif first.dtype == np.float32:
            assert not np.array_equal(first, second)


def test_synthetic_inputs_are_order_one(loaded: tuple[str, Dataset]) -> None:
    _, data = loaded
    if data.input_dim == 2:
        assert 0.2 < data.x_train.std() < 2.0 and np.abs(data.x_train).max() < 5.0


@pytest.mark.parametrize("spec", ["circles:noise=0.1,factor=0.5", {"name": "circles", "noise": 0.1, "factor": 0.5}])
def test_a_spec_string_and_a_mapping_load_the_same_data(spec: str | dict) -> None:
    data = load_dataset(spec, seed=4)
    assert data.name == "circles:noise=0.1,factor=0.5"
    np.testing.assert_array_equal(data.x_train, load_dataset("circles:factor=0.5,noise=0.1", seed=4).x_train)


def test_options_change_the_sizes() -> None:
    data = load_dataset("moons:n_train=17,n_test=5", seed=0)
    assert (len(data.x_train), len(data.x_test)) == (17, 5)


def test_circles_are_balanced_and_their_radii_match_factor() -> None:
    data = load_dataset("circles:noise=0,factor=0.3", seed=2)
    for x, y, n in ((data.x_train, data.y_train, 300), (data.x_test, data.y_test, 100)):
        assert np.bincount(y).tolist() == [n // 2, n // 2]
        radius = np.linalg.norm(x, axis=1)
        np.testing.assert_allclose(radius[y == 0], 1.0, atol=1e-6)
        np.testing.assert_allclose(radius[y == 1], 0.3, atol=1e-6)


def test_circles_defaults_are_the_deeplearning_ai_exercise() -> None:
    source = build_from_spec(DATASETS, "circles")
    assert (source.n_train, source.n_test, source.noise, source.factor) == (300, 100, 0.05, 0.8)


def test_moons_lie_on_their_two_unit_circles() -> None:
    data = load_dataset("moons:noise=0", seed=0)
    x, y = data.x_train, data.y_train
    np.testing.assert_allclose(np.linalg.norm(x[y == 0], axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(x[y == 1] - [1.0, 0.5], axis=1), 1.0, atol=1e-6)


def test_spiral_points_sit_at_the_angle_their_radius_and_arm_give() -> None:
    turns = 2.0
    data = load_dataset(f"spirals:noise=0,turns={turns}", seed=3)
    x, y = data.x_train.astype(np.float64), data.y_train
    assert np.bincount(y).tolist() == [150, 150]
    radius = np.linalg.norm(x, axis=1)
    expected = 2 * np.pi * turns * radius + np.pi * y
    # Compare on the circle: the difference of angles is a multiple of 2π.
    gap = np.angle(np.exp(1j * (np.arctan2(x[:, 1], x[:, 0]) - expected)))
    np.testing.assert_allclose(gap, 0.0, atol=1e-4)


def test_xor_labels_follow_the_sign_rule() -> None:
    data = load_dataset("xor", seed=5)
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert np.abs(x).max() <= 1.0
        np.testing.assert_array_equal(y, (x[:, 0] * x[:, 1] > 0).astype(np.int64))


def test_xor_noise_moves_the_inputs_not_the_labels() -> None:
    clean = load_dataset("xor:n_train=20000", seed=5)
    noisy = load_dataset("xor:n_train=20000,noise=0.2", seed=5)
    np.testing.assert_array_equal(clean.y_train, noisy.y_train)
    shift = noisy.x_train - clean.x_train
    assert shift.mean() == pytest.approx(0.0, abs=0.01)
    assert shift.std() == pytest.approx(0.2, rel=0.02)


def test_blobs_are_standardized_and_share_their_centers_across_splits() -> None:
    data = load_dataset("blobs:centers=4,cluster_std=4,n_train=20000,n_test=20000", seed=6)
    assert (data.n_classes, data.output_dim) == (4, 4)
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=0.02)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1.0, atol=0.02)
    for label in range(4):
        np.testing.assert_allclose(data.x_train[data.y_train == label].mean(axis=0), data.x_test[data.y_test == label].mean(axis=0), atol=0.02)


def test_two_blobs_make_a_binary_task() -> None:
    data = load_dataset("blobs:centers=2", seed=0)
    assert (data.task, data.n_classes, data.output_dim) == ("binary", 2, 1)


def test_digits_are_standardized_on_a_fixed_stratified_split() -> None:
    data = load_dataset("digits", seed=0)
    assert len(data.x_train) + len(data.x_test) == DIGITS_TOTAL
    assert len(data.x_test) == int(np.ceil(0.25 * DIGITS_TOTAL))
    assert data.input_dim == DIGITS_FEATURES and data.n_classes == 10
    std = data.x_train.std(axis=0)
    constant = std < 1e-6
    assert 0 < constant.sum() < DIGITS_FEATURES
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(std[~constant], 1.0, atol=1e-4)
    np.testing.assert_array_equal(data.x_train[:, constant], 0.0)
    # Stratified: each digit's share of the test split is its share of the training split.
    np.testing.assert_allclose(np.bincount(data.y_test) / len(data.y_test), np.bincount(data.y_train) / len(data.y_train), atol=0.01)


def test_digits_test_fraction_sets_the_split() -> None:
    data = load_dataset("digits:test_fraction=0.5", seed=0)
    assert len(data.x_test) == int(np.ceil(0.5 * DIGITS_TOTAL))


def test_teacher_targets_are_its_network_applied_to_the_inputs() -> None:
    teacher = Teacher(noise=0.0)
    data = teacher.load(seed=7)
    w1, w2 = teacher.weights(random_states(7).shared)
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        reference = np.tanh(x.astype(np.float64) @ w1.T) @ w2.T
        np.testing.assert_allclose(y, reference, rtol=1e-4, atol=1e-5)
    assert data.y_train.var() > 0.05
    # Equal inputs, equal targets: the first rows of a longer draw are the same points.
    longer = Teacher(noise=0.0, n_train=1500).load(seed=7)
    np.testing.assert_array_equal(longer.x_train[:1000], data.x_train)
    np.testing.assert_array_equal(longer.y_train[:1000], data.y_train)


def test_teacher_noise_is_gaussian_with_the_given_std() -> None:
    clean = load_dataset("teacher:noise=0,n_train=20000", seed=8)
    noisy = load_dataset("teacher:noise=0.3,n_train=20000", seed=8)
    np.testing.assert_array_equal(clean.x_train, noisy.x_train)
    residual = noisy.y_train - clean.y_train
    assert residual.mean() == pytest.approx(0.0, abs=0.01)
    assert residual.std() == pytest.approx(0.3, rel=0.02)


def test_teacher_weights_have_variance_one_over_fan_in() -> None:
    w1, w2 = Teacher(input_dim=400, hidden=500, output_dim=20).weights(random_states(0).shared)
    assert w1.shape == (500, 400) and w2.shape == (20, 500)
    assert w1.var() == pytest.approx(1 / 400, rel=0.02)
    assert w2.var() == pytest.approx(1 / 500, rel=0.05)


def test_teacher_output_dim_sets_the_target_columns() -> None:
    data = load_dataset("teacher:output_dim=3,input_dim=4", seed=0)
    assert data.y_train.shape == (1000, 3) and data.output_dim == 3 and data.input_dim == 4


# --- user .npz files ---------------------------------------------------------------------------


def save(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def two_class(n: int = 40, d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, d)), np.arange(n) % 2


def test_npz_with_a_test_split_is_used_as_given(tmp_path: Path) -> None:
    x, y = two_class()
    x_test = np.arange(12.0).reshape(4, 3)
    path = save(tmp_path, X=x, y=np.where(y == 1, 1, -1), X_test=x_test, y_test=np.array([1, -1, -1, 1]))
    data = load_dataset(str(path), seed=0)
    assert (data.name, data.task, data.n_classes, data.output_dim, data.input_dim) == (str(path), "binary", 2, 1, 3)
    np.testing.assert_array_equal(data.x_train, x.astype(np.float32))
    np.testing.assert_array_equal(data.x_test, x_test.astype(np.float32))
    # Labels {−1, 1} are renumbered in sorted order: −1 → 0, 1 → 1.
    np.testing.assert_array_equal(data.y_train, y)
    np.testing.assert_array_equal(data.y_test, [1, 0, 0, 1])
    assert data.y_train.dtype == np.int64 and data.x_train.dtype == np.float32


def test_npz_without_a_test_split_holds_out_a_fixed_stratified_quarter(tmp_path: Path) -> None:
    x = np.arange(120.0).reshape(40, 3)
    labels = np.repeat([3, 5, 9], [8, 16, 16])
    path = save(tmp_path, X=x, y=labels)
    data = load_dataset(path, seed=0)
    assert (data.task, data.n_classes) == ("multiclass", 3)
    assert (len(data.x_train), len(data.x_test)) == (30, 10)
    assert np.bincount(data.y_test).tolist() == [2, 4, 4]
    # Every row lands in exactly one split, with its own label.
    rows = np.concatenate([data.x_train, data.x_test])
    assert sorted(rows[:, 0].tolist()) == x[:, 0].tolist()
    for features, label in zip(np.concatenate([data.x_train, data.x_test]), np.concatenate([data.y_train, data.y_test])):
        assert [3, 5, 9][label] == labels[int(features[0]) // 3]
    # The same rows for every data seed.
    np.testing.assert_array_equal(load_dataset(path, seed=9).x_test, data.x_test)


def test_npz_with_float_targets_is_regression(tmp_path: Path) -> None:
    x, _ = two_class()
    target = x.sum(axis=1)
    data = load_dataset({"name": str(save(tmp_path, X=x, y=target))}, seed=0)
    assert (data.task, data.n_classes, data.output_dim) == ("regression", None, 1)
    assert data.y_train.shape == (30, 1) and data.y_train.dtype == np.float32
    np.testing.assert_allclose(data.y_train[:, 0], data.x_train.sum(axis=1), rtol=1e-5)


X, Y = two_class()
NPZ_ERRORS = {
    "missing X": ({"y": Y}, "no array 'X'"),
    "missing y": ({"X": X}, "no array 'y'"),
    "misnamed array": ({"X": X, "y": Y, "x_test": X, "y_test": Y}, "unexpected array 'x_test'. Did you mean 'X_test'?"),
    "X not 2-D": ({"X": X[:, 0], "y": Y}, "X must be 2-D"),
    "length mismatch": ({"X": X, "y": Y[:-1]}, "X has 40 rows but y has 39"),
    "X_test without y_test": ({"X": X, "y": Y, "X_test": X}, "has X_test but no y_test"),
    "y_test without X_test": ({"X": X, "y": Y, "y_test": Y}, "has y_test but no X_test"),
    "test feature count": ({"X": X, "y": Y, "X_test": X[:, :2], "y_test": Y}, "X_test has 2 features but X has 3"),
    "NaN in X": ({"X": np.where(X > 1.5, np.nan, X), "y": Y}, "X has"),
    "inf in y": ({"X": X, "y": np.where(Y == 1, np.inf, 0.0)}, "y has 20 value(s) that are NaN or infinite"),
    "NaN in X_test": ({"X": X, "y": Y, "X_test": np.full((2, 3), np.nan), "y_test": Y[:2]}, "X_test has 6 value(s) that are NaN or infinite"),
    "one class": ({"X": X, "y": np.zeros(40, dtype=int)}, "y has a single class (0)"),
    "unseen test label": ({"X": X, "y": Y, "X_test": X, "y_test": Y + 1}, "y_test has labels that y never has: [2]"),
    "labels and targets mixed": ({"X": X, "y": Y, "X_test": X, "y_test": Y.astype(float)}, "y_test has dtype float64"),
    "text features": ({"X": X.astype(str), "y": Y}, "features must be numbers"),
    "object array": ({"X": X.astype(object), "y": Y}, "cannot be read (Object arrays cannot be loaded"),
    "huge values": ({"X": X * 1e300, "y": Y}, "X has 120 value(s) that are NaN or infinite in float32"),
    "too few rows to hold out": ({"X": X[:3], "y": Y[:3]}, "cannot hold out 25% of 3 rows"),
}


@pytest.mark.parametrize("case", NPZ_ERRORS)
def test_npz_problems_name_the_file_and_the_problem(tmp_path: Path, case: str) -> None:
    contents, expected = NPZ_ERRORS[case]
    path = save(tmp_path, **contents)
    with pytest.raises(InitbenchError) as caught:
        load_dataset(str(path), seed=0)
    assert f"Dataset file '{path}'" in caught.value.message
    assert expected in caught.value.message


def save_npy(path: Path) -> None:
    """A single array saved with numpy.save, under an .npz name."""
    with path.open("wb") as file:
        np.save(file, X)


def save_corrupt(path: Path) -> None:
    """A valid archive with one byte of X's data changed, so its checksum fails."""
    content = save(path.parent, X=X, y=Y).read_bytes()
    start = content.index(X.tobytes())
    path.write_bytes(content[:start] + bytes([content[start] ^ 0xFF]) + content[start + 1 :])


UNREADABLE = {
    "missing": (lambda path: None, "the file does not exist"),
    "csv": (lambda path: path.write_text("X,y\n1,0\n"), "is not an .npz archive"),
    "empty": (lambda path: path.write_bytes(b""), "is not an .npz archive"),
    "truncated": (lambda path: path.write_bytes(save(path.parent, X=X, y=Y).read_bytes()[:-30]), "is not an .npz archive"),
    "corrupt": (save_corrupt, "cannot be read (Bad CRC-32"),
    "npy": (save_npy, "holds a single array"),
}


@pytest.mark.parametrize("case", UNREADABLE)
def test_unreadable_npz_files_are_user_errors(tmp_path: Path, case: str) -> None:
    write, expected = UNREADABLE[case]
    path = tmp_path / "data.npz"
    write(path)
    with pytest.raises(InitbenchError) as caught:
        load_dataset(str(path), seed=0)
    assert caught.value.message.startswith(f"Dataset file '{path}': {expected}")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("circles:noise=-1", "noise: Input should be greater than or equal to 0"),
        ("circles:n_trian=5", "Did you mean 'n_train'?"),
        ("circles:n_train=0", "n_train: Input should be greater than or equal to 1"),
        ("circles:factor=1", "factor: Input should be less than 1"),
        ("digits:test_fraction=1.5", "test_fraction: Input should be less than 1"),
        ("digits:test_fraction=0.001", "leaves fewer than 10 of the 1797 images"),
        ("blobs:centers=1", "centers: Input should be greater than or equal to 2"),
        ("circle", "Unknown dataset 'circle'. Did you mean 'circles'?"),
        ({"noise": 0.1}, "has no 'name' key"),
        ({"name": "data.npz", "noise": 0.1}, "takes no options, got noise"),
    ],
)
def test_bad_specs_are_user_errors(spec: str | dict, expected: str) -> None:
    with pytest.raises(InitbenchError) as caught:
        load_dataset(spec, seed=0)
    assert expected in str(caught.value)


def test_an_unknown_name_lists_the_datasets_and_mentions_npz_files() -> None:
    with pytest.raises(InitbenchError) as caught:
        load_dataset("mnist", seed=0)
    for name in NAMES:
        assert name in caught.value.hint
    assert ".npz" in caught.value.hint


def test_a_negative_data_seed_is_a_user_error() -> None:
    with pytest.raises(InitbenchError, match="Data seed -1 is negative"):
        load_dataset("circles", seed=-1)
