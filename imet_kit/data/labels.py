"""iMet CSVs <-> :class:`LabelSpace` and multi-hot ``(n, C)`` arrays.

The iMet Collection 2019 layout::

    DATA/labels.csv             attribute_id,attribute_name   (0..C-1, "culture::italian")
    DATA/train.csv              id,attribute_ids              ("13 405 1059")
    DATA/sample_submission.csv  id,attribute_ids
    DATA/train/<id>.png, DATA/test/<id>.png

Every check happens here, where the data enters, and raises :class:`InputError`
(or :class:`DataFileError`) with a message that names the file, what was expected
and what arrived.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from imet_kit.atomic import atomic_write_csv
from imet_kit.errors import DataFileError, InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
NO_GROUP = "other"


def read_csv_checked(path: str | os.PathLike, required: Sequence[str], what: str) -> pd.DataFrame:
    """Read a CSV as strings, raising a clear error for a missing file, bad CSV or missing column.

    Args:
        path: the CSV file.
        required: column names that must be present.
        what: how to name the file in messages (e.g. ``"train.csv"``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(
            f"Missing {what} file: '{path}' does not exist. Expected a CSV with columns "
            f"{', '.join(required)} (iMet format); check --data points at the dataset folder."
        )
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot parse {what} '{path}' as CSV: {exc}") from exc
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(
            f"{what} '{path}' lacks column(s) {', '.join(missing)}. Expected columns "
            f"{', '.join(required)}; received {', '.join(map(str, df.columns)) or 'none'}."
        )
    return df


@dataclass(frozen=True)
class LabelSpace:
    """The attribute vocabulary: ids ``0..C-1``, names and their groups.

    Groups come from the ``group::name`` prefix of each name (iMet: ``culture``,
    ``tag``); a name without ``::`` falls in group ``"other"``.

    Example:
        >>> space = LabelSpace.from_names(["culture::a", "culture::b", "tag::x"])
        >>> space.n_classes, space.group_names
        (3, ('culture', 'tag'))
        >>> space.group_mask("tag").tolist()
        [False, False, True]
    """

    names: tuple[str, ...]
    groups: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        groups = tuple(n.split("::", 1)[0] if "::" in n else NO_GROUP for n in self.names)
        object.__setattr__(self, "groups", groups)

    @classmethod
    def from_names(cls, names: Iterable[str]) -> LabelSpace:
        return cls(tuple(str(n) for n in names))

    @property
    def n_classes(self) -> int:
        return len(self.names)

    @property
    def ids(self) -> np.ndarray:
        return np.arange(self.n_classes)

    @property
    def group_names(self) -> tuple[str, ...]:
        """Groups in order of first appearance."""
        return tuple(dict.fromkeys(self.groups))

    @property
    def group_index(self) -> np.ndarray:
        """Per label, the index of its group in :attr:`group_names`."""
        order = {g: i for i, g in enumerate(self.group_names)}
        return np.array([order[g] for g in self.groups], dtype=np.int64)

    def group_mask(self, group: str) -> np.ndarray:
        if group not in self.group_names:
            raise InputError(
                f"Unknown attribute group '{group}'. Expected one of: "
                f"{', '.join(self.group_names)}."
            )
        return np.array([g == group for g in self.groups])

    def short_name(self, i: int) -> str:
        """The name without its group prefix."""
        return self.names[i].split("::", 1)[-1]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"attribute_id": self.ids, "attribute_name": list(self.names)})

    def fingerprint(self) -> str:
        """A short hash of the vocabulary, used to refuse mixing runs and datasets."""
        import hashlib

        return hashlib.sha1("\n".join(self.names).encode()).hexdigest()[:12]


def read_labels(path: str | os.PathLike) -> LabelSpace:
    """Read ``labels.csv`` (attribute_id, attribute_name); ids must be exactly 0..C-1.

    Example:
        >>> import io, tempfile, os
        >>> d = tempfile.mkdtemp(); p = os.path.join(d, "labels.csv")
        >>> _ = open(p, "w").write("attribute_id,attribute_name\\n1,tag::b\\n0,culture::a\\n")
        >>> read_labels(p).names
        ('culture::a', 'tag::b')
    """
    df = read_csv_checked(path, ["attribute_id", "attribute_name"], "labels.csv")
    if len(df) == 0:
        raise InputError(f"labels.csv '{path}' has no rows; expected one row per attribute.")
    raw = df["attribute_id"].str.strip()
    ids = pd.to_numeric(raw, errors="coerce")
    bad = ids.isna() | (ids % 1 != 0)
    if bad.any():
        first = raw[bad].iloc[0]
        raise InputError(
            f"labels.csv '{path}': attribute_id must be an integer; row {int(np.argmax(bad.values)) + 2} "
            f"has '{first}'."
        )
    ids = ids.astype(np.int64).to_numpy()
    order = np.argsort(ids, kind="stable")
    if not np.array_equal(ids[order], np.arange(len(ids))):
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].tolist()
        detail = f"duplicated id(s) {dup[:5]}" if dup else (
            f"received ids from {ids.min()} to {ids.max()} for {len(ids)} rows"
        )
        raise InputError(
            f"labels.csv '{path}': attribute_id must be exactly 0..{len(ids) - 1} "
            f"(each once); {detail}. Renumber the attributes consecutively from 0."
        )
    names = df["attribute_name"].to_numpy()[order]
    empty = [i for i, n in enumerate(names) if not str(n).strip()]
    if empty:
        raise InputError(f"labels.csv '{path}': attribute {empty[0]} has an empty attribute_name.")
    return LabelSpace.from_names(str(n).strip() for n in names)


def write_labels(space: LabelSpace, path: str | os.PathLike) -> None:
    atomic_write_csv(space.to_frame(), path)


def parse_attribute_ids(
    values: Sequence[str],
    n_classes: int,
    *,
    source: str = "train.csv",
    allow_empty: bool = False,
    sparse: bool = False,
) -> np.ndarray | sp.csr_matrix:
    """Parse space-separated attribute id strings into a multi-hot ``(n, C)`` matrix.

    Args:
        values: one string per image, e.g. ``"13 405 1059"``.
        n_classes: C, the number of attributes in labels.csv.
        source: the file name used in error messages.
        allow_empty: accept rows with no attribute (a sample submission), else raise.
        sparse: return a ``scipy.sparse.csr_matrix`` instead of a dense uint8 array.

    Returns:
        ``uint8`` array (or CSR matrix) of shape ``(n, C)``.

    Example:
        >>> parse_attribute_ids(["0 2", "1"], 3).tolist()
        [[1, 0, 1], [0, 1, 0]]
    """
    values = ["" if v is None else str(v) for v in values]
    tokens = [v.split() for v in values]
    lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    if not allow_empty and (lengths == 0).any():
        row = int(np.argmax(lengths == 0))
        raise InputError(
            f"{source}: row {row + 2} has an empty attribute_ids; every image needs at least "
            f"one attribute id (space-separated integers, e.g. '13 405')."
        )
    flat = [tok for t in tokens for tok in t]
    try:
        cols = np.array(flat, dtype=np.int64)
    except ValueError:
        for r, t in enumerate(tokens):
            for tok in t:
                try:
                    int(tok)
                except ValueError:
                    raise InputError(
                        f"{source}: row {r + 2} has attribute id '{tok}'; expected "
                        f"space-separated non-negative integers such as '13 405'."
                    ) from None
        raise
    rows = np.repeat(np.arange(len(values)), lengths)
    if cols.size and cols.min() < 0:
        r = int(rows[np.argmax(cols < 0)])
        raise InputError(
            f"{source}: row {r + 2} has negative attribute id {int(cols.min())}; "
            f"ids are 0..{n_classes - 1} as listed in labels.csv."
        )
    if cols.size and cols.max() >= n_classes:
        i = int(np.argmax(cols >= n_classes))
        raise InputError(
            f"{source}: row {int(rows[i]) + 2} has attribute id {int(cols[i])}, which is not in "
            f"labels.csv (ids 0..{n_classes - 1}). Use the labels.csv that belongs to this data."
        )
    mat = sp.csr_matrix(
        (np.ones(len(cols), dtype=np.uint8), (rows, cols)), shape=(len(values), n_classes)
    )
    mat.sum_duplicates()
    mat.data[:] = 1
    if sparse:
        return mat
    return mat.toarray()


def format_attribute_ids(y: np.ndarray | sp.spmatrix) -> list[str]:
    """Multi-hot ``(n, C)`` -> list of space-separated id strings (ascending)."""
    mat = sp.csr_matrix(y)
    mat.sort_indices()
    out = []
    for i in range(mat.shape[0]):
        idx = mat.indices[mat.indptr[i] : mat.indptr[i + 1]][mat.data[mat.indptr[i] : mat.indptr[i + 1]] != 0]
        out.append(" ".join(map(str, idx.tolist())))
    return out


@dataclass
class Annotations:
    """Image ids and their multi-hot labels, as read from train.csv."""

    ids: list[str]
    y: np.ndarray | sp.csr_matrix

    def __len__(self) -> int:
        return len(self.ids)


def read_annotations(
    path: str | os.PathLike,
    space: LabelSpace,
    *,
    allow_empty: bool = False,
    sparse: bool = False,
) -> Annotations:
    """Read ``train.csv`` / ``sample_submission.csv`` (id, attribute_ids).

    Raises :class:`InputError` for a missing column, duplicate ids, an empty
    attribute list (unless ``allow_empty``), non-integer, negative or unknown ids.
    """
    name = Path(path).name
    df = read_csv_checked(path, ["id", "attribute_ids"], name)
    ids = df["id"].str.strip()
    if (ids == "").any():
        raise InputError(f"{name}: row {int(np.argmax((ids == '').values)) + 2} has an empty id.")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise InputError(
            f"{name}: {len(dup)} duplicate image id(s), first '{dup.iloc[0]}'. Each id must "
            f"appear once; merge the rows' attribute_ids."
        )
    y = parse_attribute_ids(
        df["attribute_ids"].tolist(), space.n_classes, source=name, allow_empty=allow_empty,
        sparse=sparse,
    )
    return Annotations(ids=ids.tolist(), y=y)


def write_annotations(
    path: str | os.PathLike, ids: Sequence[str], y: np.ndarray | sp.spmatrix
) -> None:
    """Write ``id,attribute_ids`` (the train.csv / submission.csv format) atomically."""
    if len(ids) != y.shape[0]:
        raise InputError(f"write_annotations: {len(ids)} ids but {y.shape[0]} label rows.")
    atomic_write_csv(pd.DataFrame({"id": list(ids), "attribute_ids": format_attribute_ids(y)}), path)








