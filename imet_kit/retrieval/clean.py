"""Cleaning a gallery: drop images whose embedding is far from their class centre."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from imet_kit.errors import InputError
from imet_kit.retrieval.embed import _normalize

log = logging.getLogger(__name__)


@dataclass
class CleaningReport:
    """Per image: its class size, mean cosine to the rest of its class, and whether kept."""

    table: pd.DataFrame
    threshold: float

    @property
    def keep(self) -> np.ndarray:
        return self.table["kept"].to_numpy()

    def summary(self) -> str:
        t = self.table
        dropped = t[~t["kept"]]
        worst = dropped.groupby("label").size().sort_values(ascending=False).head(5)
        return (f"kept {int(t['kept'].sum())} of {len(t)} images (threshold {self.threshold}); "
                f"dropped {len(dropped)} from {dropped['label'].nunique()} classes"
                + (f", most from: {', '.join(f'{k} ({v})' for k, v in worst.items())}" if len(worst) else "")
                + f"; {int(t['mean_similarity'].isna().sum())} singletons kept unscored.")


def clean_by_class_similarity(embeddings: np.ndarray, labels: Sequence, threshold: float = 0.5, *,
                              ids: Sequence[str] | None = None) -> CleaningReport:
    """Drop images whose mean cosine similarity to the rest of their class is below ``threshold``.

    ``O(n d)``: the class sums are accumulated once, so no pairwise matrix is formed.
    Singleton classes cannot be judged and are kept (mean_similarity NaN).
    """
    z = _normalize(embeddings)
    if len(labels) != len(z):
        raise InputError(f"clean_by_class_similarity: {len(z)} embeddings but {len(labels)} labels.")
    codes, _ = pd.factorize(np.asarray(labels, dtype=object))
    sums = np.zeros((codes.max() + 1, z.shape[1]), np.float64)
    np.add.at(sums, codes, z)
    sizes = np.bincount(codes)[codes]
    own = np.einsum("ij,ij->i", z, sums[codes]) - np.einsum("ij,ij->i", z, z)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sim = np.where(sizes > 1, own / (sizes - 1), np.nan)
    kept = np.isnan(mean_sim) | (mean_sim >= threshold)
    table = pd.DataFrame({"id": list(ids) if ids is not None else np.arange(len(z)),
                          "label": list(labels), "class_size": sizes,
                          "mean_similarity": mean_sim, "kept": kept})
    report = CleaningReport(table, float(threshold))
    log.info("clean_by_class_similarity: %s", report.summary())
    return report
