"""Datasets for the training experiments; nothing is downloaded.

- ``digits``: the scikit-learn handwritten digits (1,797 images of 8×8 pixels, ships with scikit-learn),
  split into train/test by a stratified split drawn from a seed. The embedded default.
- ``mnist``: MNIST from a folder of the standard IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally
  ``.gz``). With the training files, the standard 60,000/10,000 split; with only the 10,000-image test
  split, its first 8,000 images train and its last 2,000 test (a fixed, documented split).

Pixels are scaled to [0, 1]; images are flattened to vectors (float32), labels are int64.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instruments.failures import UserFacingError

DATASETS = ("digits", "mnist")
MNIST_TEST_ONLY_TRAIN = 8_000  # images of the 10k test split used for training when train-* is absent
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801


class DatasetError(UserFacingError, ValueError):
    """A dataset that cannot be read; the message names the file or folder and what to do."""


@dataclass
class Dataset:
    """Train and test tensors of one dataset, with where they came from (plain values in ``info``)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    def to(self, device: str | torch.device) -> Dataset:
        """The same data on another torch device."""
        return Dataset(self.name, self.x_train.to(device), self.y_train.to(device), self.x_test.to(device),
                       self.y_test.to(device), self.n_classes, dict(self.info))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "n_train": int(self.x_train.shape[0]), "n_test": int(self.x_test.shape[0]),
                "n_features": self.n_features, "n_classes": self.n_classes, **self.info}

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, {self.x_train.shape[0]} train / {self.x_test.shape[0]} test, "
                f"{self.n_features} features, {self.n_classes} classes)")


def load_digits(seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """The scikit-learn handwritten digits, a stratified train/test split drawn from ``seed``."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test_fraction: must lie strictly between 0 and 1, got {test_fraction!r}")
    bunch = sklearn_digits()
    x = bunch.data.astype(np.float32) / 16.0  # pixel values 0..16
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                                        stratify=y)
    return Dataset("digits", torch.from_numpy(x_train), torch.from_numpy(y_train), torch.from_numpy(x_test),
                   torch.from_numpy(y_test), 10,
                   {"source": "sklearn.datasets.load_digits", "split": f"stratified, test_fraction={test_fraction}",
                    "split_seed": seed})


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file (optionally gzip-compressed) as a uint8 array of its stored shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read the IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    n_dims = raw[3]
    header = 4 + 4 * n_dims
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(n_dims))
    if len(raw) != header + int(np.prod(shape)):
        raise DatasetError(f"{path}: {len(raw) - header} data bytes for shape {shape} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _images_and_labels(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    images = _idx_file(folder, f"{split}-images-idx3-ubyte")
    labels = _idx_file(folder, f"{split}-labels-idx1-ubyte")
    if images is None and labels is None:
        return None
    if images is None or labels is None:
        missing = f"{split}-images-idx3-ubyte" if images is None else f"{split}-labels-idx1-ubyte"
        raise DatasetError(f"{folder}: {missing}(.gz) is missing (the {split} images and labels come as a pair)")
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DatasetError(f"{folder}: {split} images of shape {x.shape} do not match labels of shape {y.shape}")
    return x.reshape(x.shape[0], -1).astype(np.float32) / 255.0, y.astype(np.int64)


def mnist_available(data_dir: str | Path) -> bool:
    """Whether ``data_dir`` holds at least the MNIST test split (images and labels)."""
    folder = Path(data_dir)
    return (_idx_file(folder, "t10k-images-idx3-ubyte") is not None
            and _idx_file(folder, "t10k-labels-idx1-ubyte") is not None)


def load_mnist(data_dir: str | Path) -> Dataset:
    """MNIST from the IDX files in ``data_dir`` (see the module docstring for the split)."""
    folder = Path(data_dir)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder (give --data-dir the folder with the MNIST IDX files)")
    test = _images_and_labels(folder, "t10k")
    if test is None:
        raise DatasetError(f"{folder}: no t10k-images-idx3-ubyte(.gz) / t10k-labels-idx1-ubyte(.gz) here "
                           "(the MNIST test split is needed)")
    train = _images_and_labels(folder, "train")
    if train is not None:
        (x_train, y_train), (x_test, y_test) = train, test
        split = "standard train/test files"
    else:
        x, y = test
        if x.shape[0] <= MNIST_TEST_ONLY_TRAIN:
            raise DatasetError(f"{folder}: only {x.shape[0]} test images; need more than {MNIST_TEST_ONLY_TRAIN} "
                               "to split them when the train files are absent")
        x_train, y_train = x[:MNIST_TEST_ONLY_TRAIN], y[:MNIST_TEST_ONLY_TRAIN]
        x_test, y_test = x[MNIST_TEST_ONLY_TRAIN:], y[MNIST_TEST_ONLY_TRAIN:]
        split = f"t10k only: first {MNIST_TEST_ONLY_TRAIN} train, last {x.shape[0] - MNIST_TEST_ONLY_TRAIN} test"
    return Dataset("mnist", torch.from_numpy(x_train.copy()), torch.from_numpy(y_train.copy()),
                   torch.from_numpy(x_test.copy()), torch.from_numpy(y_test.copy()), 10,
                   {"source": str(folder.resolve()), "split": split})


def load_dataset(name: str, data_dir: str | Path | None = None, seed: int = 0) -> Dataset:
    """``"digits"`` (split drawn from ``seed``) or ``"mnist"`` (from ``data_dir``)."""
    if name == "digits":
        return load_digits(seed=seed)
    if name == "mnist":
        if data_dir is None:
            raise DatasetError("mnist: give the folder with the IDX files (--data-dir)")
        return load_mnist(data_dir)
    raise DatasetError(f"dataset: expected one of {', '.join(DATASETS)}, got {name!r}")


__all__ = ["DATASETS", "Dataset", "DatasetError", "load_dataset", "load_digits", "load_mnist", "mnist_available",
           "read_idx"]
