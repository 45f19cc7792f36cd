"""MixUp and CutMix on a training batch, with multi-hot targets, seeded per batch.

Both use Keras 3's own layers (``keras.layers.MixUp``, ``keras.layers.CutMix``), driven
through their public transform API so that the draws come from a seed that is a pure
function of (seed, epoch, batch index), like the rest of :class:`~imet_kit.data.dataset.ImageDataset`
(their default is a layer-held seed generator that advances with every call, whichever
worker thread makes it, so a resumed run would not see the same batches).

Label rules for sigmoid multi-hot targets (each image is paired with another of the batch):

* MixUp: ``y = lam * y_a + (1 - lam) * y_b`` with ``lam ~ Beta(alpha, alpha)`` per image,
  which is Keras' rule: each label's target is how much of it the blend shows.
* CutMix: a box of image b is pasted into image a; ``y = (1 - r) * y_a + r * y_b`` with ``r``
  the fraction of pixels pasted (area-weighted, Keras' rule). For small objects at uniform
  positions that is the probability each one is still visible, so it is the BCE-optimal
  target; a label both images carry stays 1. Keras computes ``r`` from the fractional box
  corners; here it is recounted from the pixel mask actually pasted, so targets match pixels
  exactly. Keras' ``factor`` is used as ``(alpha, alpha)``, so ``lam ~ Beta(alpha, alpha)``
  as in the paper (``alpha = 1``: uniform).

With both switched on, each batch uses one of them, chosen with probability 1/2 (timm's rule).

Example:
    >>> mix = BatchMix(mixup=0.4)
    >>> x = np.zeros((4, 8, 8, 3), np.uint8); y = np.eye(4, dtype=np.float32)
    >>> xm, ym = mix(x, y, seed=1)
    >>> xm.shape, ym.shape, bool(np.allclose(ym.sum(1), 1.0))
    ((4, 8, 8, 3), (4, 4), True)
"""

from __future__ import annotations

import math

import keras
import numpy as np

from imet_kit.errors import InputError


class BatchMix:
    """MixUp (``mixup`` = Beta alpha) and / or CutMix (``cutmix`` = Beta alpha in (0, 1]).

    Args:
        mixup: MixUp's alpha; 0 switches it off.
        cutmix: CutMix's alpha, at most 1 (Keras' bound); 0 switches it off.

    Call ``mix(x, y, seed)`` with a ``(B, H, W, 3)`` batch (any dtype, 0-255) and ``(B, C)``
    targets; it returns float32 ``(x, y)``. The same seed gives the same result.
    """

    def __init__(self, mixup: float = 0.0, cutmix: float = 0.0) -> None:
        if not (math.isfinite(mixup) and mixup >= 0) or not 0 <= cutmix <= 1:
            raise InputError(f"mixup must be a number >= 0 and cutmix in [0, 1] (0 = off); received "
                             f"mixup={mixup!r}, cutmix={cutmix!r}.")
        self.mixup = float(mixup)
        self.cutmix = float(cutmix)
        self._layers: dict[str, keras.layers.Layer] = {}

    @property
    def active(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def __getstate__(self) -> dict:
        return {"mixup": self.mixup, "cutmix": self.cutmix, "_layers": {}}  # layers rebuilt per process

    def _layer(self, kind: str) -> keras.layers.Layer:
        if kind not in self._layers:  # float32 whatever the global mixed-precision policy
            self._layers[kind] = (keras.layers.MixUp(alpha=self.mixup, dtype="float32") if kind == "mixup"
                                  else keras.layers.CutMix(factor=(self.cutmix, self.cutmix), dtype="float32"))
        return self._layers[kind]

    def choose(self, seed: int) -> str | None:
        """Which mix the batch with ``seed`` gets: ``"mixup"``, ``"cutmix"`` or None."""
        if self.mixup > 0 and self.cutmix > 0:
            return "mixup" if np.random.default_rng(seed).random() < 0.5 else "cutmix"
        return "mixup" if self.mixup > 0 else ("cutmix" if self.cutmix > 0 else None)

    def transformation(self, x, y, seed: int) -> tuple[str | None, dict | None]:
        """The batch's draw: which mix, and Keras' transformation dict (``permutation_order``,
        ``mix_weight`` = the share of image a per row, and for CutMix ``batch_masks``)."""
        kind = self.choose(seed)
        if kind is None:
            return None, None
        layer = self._layer(kind)
        data = {"images": keras.ops.convert_to_tensor(np.asarray(x, np.float32)),
                "labels": keras.ops.convert_to_tensor(np.asarray(y, np.float32))}
        t = layer.get_random_transformation(data, training=True,
                                            seed=keras.random.SeedGenerator(int(seed) & 0x7FFFFFFF))
        if kind == "cutmix":  # the share of a's own pixels, counted on the mask actually pasted
            pasted = keras.ops.mean(keras.ops.cast(t["batch_masks"][..., 0], "float32"), axis=(1, 2))
            t = {**t, "mix_weight": 1.0 - pasted}
        return kind, t

    def __call__(self, x, y, seed: int) -> tuple[np.ndarray, np.ndarray]:
        kind, t = self.transformation(x, y, seed)
        if kind is None:
            return np.asarray(x, np.float32), np.asarray(y, np.float32)
        layer = self._layer(kind)
        xm = layer.transform_images(keras.ops.convert_to_tensor(np.asarray(x, np.float32)), t)
        ym = layer.transform_labels(keras.ops.convert_to_tensor(np.asarray(y, np.float32)), t)
        return (np.asarray(keras.ops.convert_to_numpy(xm), np.float32),
                np.asarray(keras.ops.convert_to_numpy(ym), np.float32))
