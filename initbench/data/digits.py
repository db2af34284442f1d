"""scikit-learn's 8×8 handwritten digits, on a fixed split that ignores the data seed.

scikit-learn is imported inside :meth:`Digits.load`: it takes over a second to import, and listing
the registry (``initbench list``) should not pay for it.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from initbench.data.base import BUILD_COPIES, DATASETS, FIXED_SPLIT_SEED, Dataset, DatasetSource

#: Size of scikit-learn's digits dataset.
DIGITS_SAMPLES = 1797


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
        # Deferred for start-up time: loads pandas, rich, scipy and sklearn.
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
