"""imet_kit.training.validate: every recipe choice (issue 12) is checked, all problems at once."""

import doctest

import pytest

from imet_kit.config import TrainConfig
from imet_kit.errors import InputError
from imet_kit.training import validate
from imet_kit.training.validate import check_config

OK = TrainConfig(data="d", backbone="tiny_cnn", weights=None)


def test_the_recipe_choices_pass():
    cfg = OK.replace(resize="pad", flip=False, mixup=0.2, cutmix=1.0, ema=0.999, clipnorm=1.0,
                     weight_decay=0.05, label_smoothing=0.1, grad_accum_steps=4, lr_schedule="onecycle",
                     pooling="avgmax", augment="randaugment", backbone="plain_cnn")
    assert check_config(cfg) is cfg
    for backbone in ("plain_cnn", "resnet_small"):
        check_config(OK.replace(backbone=backbone))


@pytest.mark.parametrize("field, value, message", [
    ("resize", "stretch", "resize: unknown 'stretch', expected one of crop, squash, pad"),
    ("mixup", -0.1, "mixup: expected a Beta alpha in [0, 10]"),
    ("cutmix", 1.5, "cutmix: expected a Beta alpha in [0, 1]"),
    ("ema", 0.3, "ema: expected 0 (off) or a momentum in [0.5, 1)"),
    ("ema", 1.0, "ema: expected 0 (off) or a momentum"),
    ("clipnorm", 0.0, "clipnorm: expected a positive number or none"),
    ("weight_decay", -1e-4, "weight_decay: expected a number in [0, 1) or none"),
    ("label_smoothing", 1.0, "label_smoothing: expected a number in [0, 1)"),
    ("grad_accum_steps", 0, "grad_accum_steps: expected an integer >= 1"),
    ("lr_schedule", "step", "lr_schedule: unknown 'step', expected one of constant, cosine, onecycle"),
    ("pooling", "sum", "pooling: unknown 'sum', expected one of avg, max, gem, avgmax"),
    ("augment", "heavy", "augment: unknown 'heavy', expected one of notebook, light, strong, randaugment"),
])
def test_each_bad_value_is_named_with_what_was_expected(field, value, message):
    with pytest.raises(InputError, match="^Invalid " + message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        check_config(OK.replace(**{field: value}))


def test_pairs_that_do_not_fit_and_all_problems_at_once():
    with pytest.raises(InputError) as err:
        check_config(OK.replace(label_smoothing=0.1, loss="asl", ema=2.0, resize="fit"))
    msg = str(err.value)
    assert msg.startswith("3 problems in the config")
    assert "label_smoothing: smooths the targets of loss 'bce' only, received loss 'asl'" in msg
    assert "ema: expected" in msg and "resize: unknown 'fit'" in msg
    problems = validate.mixing_problems(OK.replace(task="embedding", mixup=0.2))
    assert problems == ["mixup/cutmix: mix multi-hot targets of task 'multilabel' only, received "
                        "task 'embedding'"]


def test_recipe_fields_round_trip_through_json_and_types_are_checked():
    cfg = OK.replace(resize="squash", flip=False, clipnorm=None, weight_decay=0.01, grad_accum_steps=2)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InputError, match="flip: expected bool, received 'no'"):
        TrainConfig.from_dict({"flip": "no"})
    with pytest.raises(InputError, match="clipnorm: expected float or null"):
        TrainConfig.from_dict({"clipnorm": "1"})
    old = {k: v for k, v in OK.to_dict().items() if k not in ("resize", "flip", "ema")}
    assert TrainConfig.from_dict(old).resize == "crop"  # a run folder from before issue 12 loads


def test_docstring_examples():
    assert doctest.testmod(validate).failed == 0
