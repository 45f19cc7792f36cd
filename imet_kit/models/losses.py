"""Multi-label losses as serialisable Keras ``Loss`` classes.

All three take probabilities by default (the classifier ends in a float32
sigmoid) or logits with ``from_logits=True``, and average over classes, so they
are on the same scale as ``keras.losses.BinaryCrossentropy``. At their neutral
settings focal loss (``gamma=0, alpha=None``) and ASL (``gamma_neg=gamma_pos=0,
clip=0``) equal binary cross-entropy.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from imet_kit.errors import InputError, describe_choices


def _log_probs(y_pred, from_logits: bool):
    """p, log(p), log(1 - p), with probabilities clipped as Keras' BCE clips them."""
    if from_logits:
        return ops.sigmoid(y_pred), ops.log_sigmoid(y_pred), ops.log_sigmoid(-y_pred)
    eps = keras.config.epsilon()
    p = ops.clip(y_pred, eps, 1.0 - eps)
    return p, ops.log(p), ops.log(1.0 - p)


class _MultiLabelLoss(keras.losses.Loss):
    def __init__(self, from_logits: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.from_logits = bool(from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="imet_kit")
class BinaryCrossentropyLoss(_MultiLabelLoss):
    """Binary cross-entropy averaged over classes, with optional label smoothing.

    Args:
        label_smoothing: targets become ``y * (1 - s) + 0.5 * s``.
        from_logits: ``y_pred`` are logits rather than probabilities.
        pos_weight: one weight per class for the positive term (``class_weight``, see
            :func:`class_positive_weights`); ``None``: all 1.
        **kwargs: ``keras.losses.Loss`` arguments (``name``, ``reduction``, ``dtype``).

    Example:
        >>> import numpy as np
        >>> round(float(BinaryCrossentropyLoss()(np.array([[1.0, 0.0]]), np.array([[0.9, 0.2]]))), 4)
        0.1643
    """

    def __init__(self, label_smoothing: float = 0.0, from_logits: bool = False,
                 name: str = "bce", pos_weight=None, **kwargs):
        super().__init__(from_logits=from_logits, name=name, **kwargs)
        if not 0.0 <= label_smoothing <= 1.0:
            raise InputError(f"label_smoothing must be in [0, 1]; received {label_smoothing}.")
        self.label_smoothing = float(label_smoothing)
        self.pos_weight = None if pos_weight is None else [float(w) for w in pos_weight]

    def call(self, y_true, y_pred):
        y = ops.cast(y_true, y_pred.dtype)
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        _, log_p, log_q = _log_probs(y_pred, self.from_logits)
        pos = y * log_p
        if self.pos_weight is not None:
            pos = pos * ops.convert_to_tensor(self.pos_weight, dtype=y_pred.dtype)
        return -ops.mean(pos + (1.0 - y) * log_q, axis=-1)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing,
                "pos_weight": self.pos_weight}


@keras.saving.register_keras_serializable(package="imet_kit")
class BinaryFocalLoss(_MultiLabelLoss):
    """Focal loss (Lin et al. 2017) per label: ``-a_t (1 - p_t)^gamma log(p_t)``, class mean.

    Args:
        gamma: focusing exponent; 0 gives cross-entropy.
        alpha: weight of positives (negatives get ``1 - alpha``); ``None``: no weighting.
        from_logits: ``y_pred`` are logits.
        **kwargs: ``keras.losses.Loss`` arguments.

    Example:
        >>> import numpy as np
        >>> y, p = np.array([[1.0, 0.0]]), np.array([[0.9, 0.2]])
        >>> float(BinaryFocalLoss(gamma=2.0)(y, p)) < float(BinaryCrossentropyLoss()(y, p))
        True
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None, from_logits: bool = False,
                 name: str = "focal", **kwargs):
        super().__init__(from_logits=from_logits, name=name, **kwargs)
        if gamma < 0 or (alpha is not None and not 0.0 <= alpha <= 1.0):
            raise InputError(f"BinaryFocalLoss needs gamma >= 0 and alpha in [0, 1] or None; "
                             f"received gamma={gamma}, alpha={alpha}.")
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else float(alpha)

    def call(self, y_true, y_pred):
        y = ops.cast(y_true, y_pred.dtype)
        p, log_p, log_q = _log_probs(y_pred, self.from_logits)
        pos = y * ops.power(1.0 - p, self.gamma) * log_p
        neg = (1.0 - y) * ops.power(p, self.gamma) * log_q
        if self.alpha is not None:
            pos, neg = self.alpha * pos, (1.0 - self.alpha) * neg
        return -ops.mean(pos + neg, axis=-1)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="imet_kit")
class AsymmetricLoss(_MultiLabelLoss):
    """Asymmetric loss, ASL (Ben-Baruch, Ridnik et al., ICCV 2021).

    Positives: ``(1 - p)^gamma_pos log(p)``. Negatives use the shifted probability
    ``p_m = max(p - clip, 0)``: ``p_m^gamma_neg log(1 - p_m)``, so easy negatives
    (p < clip) are discarded and the many negatives of a 1,103-label problem stop
    dominating. The paper sums over labels; this averages, so values are the
    paper's divided by the number of labels.

    Args:
        gamma_neg: focusing exponent for negatives (paper: 4).
        gamma_pos: focusing exponent for positives (paper: 0 or 1).
        clip: probability margin for negatives, in [0, 1) (paper: 0.05).
        from_logits: ``y_pred`` are logits.
        **kwargs: ``keras.losses.Loss`` arguments.

    Example:
        >>> import numpy as np
        >>> round(float(AsymmetricLoss()(np.array([[1.0, 0.0]]), np.array([[0.9, 0.04]]))), 4)
        0.0527
    """

    def __init__(self, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05,
                 from_logits: bool = False, name: str = "asl", **kwargs):
        super().__init__(from_logits=from_logits, name=name, **kwargs)
        if gamma_neg < 0 or gamma_pos < 0 or not 0.0 <= clip < 1.0:
            raise InputError(f"AsymmetricLoss needs gamma_neg, gamma_pos >= 0 and clip in [0, 1); "
                             f"received {gamma_neg}, {gamma_pos}, {clip}.")
        self.gamma_neg = float(gamma_neg)
        self.gamma_pos = float(gamma_pos)
        self.clip = float(clip)

    def call(self, y_true, y_pred):
        y = ops.cast(y_true, y_pred.dtype)
        p, log_p, log_q = _log_probs(y_pred, self.from_logits)
        p_m = p
        if self.clip > 0:
            p_m = ops.maximum(p - self.clip, 0.0)
            log_q = ops.log(ops.maximum(1.0 - p_m, keras.config.epsilon()))
        pos = y * ops.power(1.0 - p, self.gamma_pos) * log_p
        neg = (1.0 - y) * ops.power(p_m, self.gamma_neg) * log_q
        return -ops.mean(pos + neg, axis=-1)

    def get_config(self):
        return {**super().get_config(), "gamma_neg": self.gamma_neg,
                "gamma_pos": self.gamma_pos, "clip": self.clip}


LOSSES = {"bce": BinaryCrossentropyLoss, "focal": BinaryFocalLoss, "asl": AsymmetricLoss}

# --- class weighting for the long tail (``class_weight``) ------------------------------------
CLASS_WEIGHTS = ("none", "inverse_log")


def class_positive_weights(y, method: str = "inverse_log") -> np.ndarray | None:
    """Per-class weights of the positive BCE term, from the training rows' label counts ``n_c``.

    ``inverse_log``: ``w_c ∝ 1 / ln(1 + max(n_c, 1))``, scaled so that ``sum_c n_c w_c =
    sum_c n_c``: the positives weigh as much in total as without weighting, rare labels more
    and frequent ones less. ``none`` returns None.

    Example:
        >>> import numpy as np
        >>> class_positive_weights(np.array([[1, 0], [1, 0], [1, 0], [1, 1]])).round(3).tolist()
        [0.791, 1.836]
    """
    if method not in CLASS_WEIGHTS:
        raise InputError(f"Unknown class_weight {method!r}. Expected one of: "
                         f"{describe_choices(CLASS_WEIGHTS)}.")
    if method == "none":
        return None
    counts = np.asarray((y > 0).sum(0)).ravel().astype(np.float64)
    raw = 1.0 / np.log1p(np.maximum(counts, 1.0))
    total = float((counts * raw).sum())
    return raw * (counts.sum() / total) if total > 0 else np.ones_like(raw)


def get_loss(name: str, **kwargs) -> keras.losses.Loss:
    """A loss by name: ``"bce"``, ``"focal"`` or ``"asl"``, with its arguments.

    Example:
        >>> get_loss("asl", gamma_neg=2).gamma_neg
        2.0
    """
    if name not in LOSSES:
        raise InputError(f"Unknown loss {name!r}. Expected one of: {describe_choices(sorted(LOSSES))}.")
    try:
        return LOSSES[name](**kwargs)
    except TypeError as exc:
        raise InputError(f"get_loss({name!r}): {exc}.") from None
