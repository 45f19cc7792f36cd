"""imet_kit.training.validate: every registry name in a config is checked, each unknown one with
the choices listed, the weights setting against the backbone, and several problems (names and
numbers) come as ONE error listing all of them."""

import re

import keras
import pytest

from imet_kit.config import TrainConfig
from imet_kit.data.augment import TRAIN_PRESETS
from imet_kit.errors import InputError
from imet_kit.folds.maker import METHODS
from imet_kit.models.backbones import BACKBONES
from imet_kit.models.heads import POOLINGS
from imet_kit.models.losses import LOSSES
from imet_kit.training.optim import LR_SCHEDULES, OPTIMIZERS
from imet_kit.training.task import TASKS
from imet_kit.training.validate import check_config, name_problems

OK = TrainConfig(backbone="tiny_cnn", weights=None)
FIELDS = [("task", TASKS), ("backbone", BACKBONES), ("augment", TRAIN_PRESETS),
          ("loss", LOSSES), ("pooling", POOLINGS), ("optimizer", OPTIMIZERS),
          ("lr_schedule", LR_SCHEDULES), ("fold_method", METHODS)]


def test_a_good_config_passes_and_is_returned():
    assert name_problems(OK) == []
    assert check_config(OK) is OK


@pytest.mark.parametrize("field, choices", FIELDS, ids=[f for f, _ in FIELDS])
def test_each_unknown_name_lists_its_choices(field, choices):
    cfg = OK.replace(**{field: "nope"})
    problems = name_problems(cfg)
    assert len(problems) == 1 and problems[0].startswith(f"{field}: unknown 'nope', expected one of ")
    listed = problems[0].split("expected one of ", 1)[1].split(", ")
    assert sorted(listed) == sorted(str(c) for c in choices)
    with pytest.raises(InputError, match=f"^Invalid {field}: unknown 'nope'"):
        check_config(cfg)


def test_a_missing_weights_file_is_named(tmp_path):
    missing = tmp_path / "b3.weights.h5"
    with pytest.raises(InputError, match=f"weights: the file '{re.escape(str(missing))}' does not exist"):
        check_config(OK.replace(weights=str(missing)))
    missing.write_bytes(b"")  # there now: the file itself is read when the model is built
    assert check_config(OK.replace(weights=str(missing))).weights == str(missing)


def test_weights_a_backbone_cannot_download_list_what_it_can():
    problems = name_problems(OK.replace(weights="imagenet"))  # tiny_cnn has no pretrained weights
    assert len(problems) == 1
    assert "weights: 'imagenet' is neither a weights file nor a name this backbone can download" in problems[0]
    assert "(none)" in problems[0]
    efn = name_problems(OK.replace(backbone="efn_b0", weights="instagram"))
    efn = [p for p in efn if not p.startswith("backbone: 'efn_b0' is")]  # under JAX: needs TF
    assert len(efn) == 1 and "(imagenet, noisy-student)" in efn[0]
    assert name_problems(OK.replace(backbone="efficientnet_b0", weights="imagenet")) == []


def test_several_bad_fields_are_one_error_listing_all():
    cfg = TrainConfig(backbone="effnet", augment="wild", loss="l2", pooling="sum",
                      optimizer="rmsprop", lr_schedule="step", fold_method="random",
                      task="detect", weights=None, folds=1)
    with pytest.raises(InputError) as exc:
        check_config(cfg)
    msg = str(exc.value)
    assert msg.startswith("9 problems in the config:")
    for part in ("folds: expected an integer >= 2", "backbone: unknown 'effnet'",
                 "augment: unknown 'wild'", "loss: unknown 'l2'", "pooling: unknown 'sum'",
                 "optimizer: unknown 'rmsprop'", "lr_schedule: unknown 'step'",
                 "fold_method: unknown 'random'", "task: unknown 'detect'"):
        assert part in msg, part
    assert msg.count("\n") == 0  # one line for the CLI


def test_the_tasks_own_fields_are_checked_with_the_rest():
    cfg = OK.replace(task="embedding", margin_head="arcfoo", loss="l2")
    with pytest.raises(InputError) as exc:
        check_config(cfg)
    msg = str(exc.value)
    assert msg.startswith("2 problems") and "loss: unknown 'l2'" in msg
    assert "margin_head: unknown 'arcfoo', expected one of" in msg and "arcface" in msg
    # the multilabel task has no margin head to check
    assert check_config(OK.replace(margin_head="arcfoo")).margin_head == "arcfoo"


def test_tensorboard_without_its_package_is_one_problem_naming_the_fix(monkeypatch):
    """tf.summary writes nothing without the tensorboard package: say so before training."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "tensorboard" else real(name, *a, **k))
    problems = name_problems(OK)
    assert len(problems) == 1 and problems[0].startswith("tensorboard:")
    assert "pip install tensorboard" in problems[0] and "--no-tensorboard" in problems[0]
    assert name_problems(OK.replace(tensorboard=False)) == []


# --- --distribution (issue 13 item 3) ---------------------------------------------------------
def test_an_unknown_distribution_lists_the_choices():
    with pytest.raises(InputError, match=r"^Invalid distribution: unknown 'spread', expected one of "
                                         r"auto, none, mirrored, data-parallel\.$"):
        check_config(OK.replace(distribution="spread"))


def test_data_parallel_runs_on_both_backends_and_mirrored_is_refused_under_jax():
    from imet_kit.training.devices import distribution_problems

    assert distribution_problems("data-parallel", 32, backend="tensorflow") == []  # mirrored there
    (jax_msg,) = distribution_problems("mirrored", 32, backend="jax")
    assert "MirroredStrategy" in jax_msg and "KERAS_BACKEND=tensorflow" in jax_msg
    assert "use --distribution data-parallel, auto or none" in jax_msg
    check_config(OK.replace(distribution="data-parallel"))
    if keras.backend.backend() == "jax":
        with pytest.raises(InputError, match="needs KERAS_BACKEND=tensorflow"):
            check_config(OK.replace(distribution="mirrored"))


def test_a_batch_that_does_not_split_over_the_replicas_is_refused(monkeypatch):
    from imet_kit.training import devices

    native = "data-parallel"
    monkeypatch.setattr(devices, "replica_count", lambda kind: 4 if kind == native else 1)
    check_config(OK.replace(distribution=native, batch_size=12))
    check_config(OK.replace(distribution="none", batch_size=10))
    with pytest.raises(InputError, match=r"batch_size: 10 does not split evenly over the 4 replicas"
                                         r".*global batch.*--batch-size 8 or 12"):
        check_config(OK.replace(distribution=native, batch_size=10))
    with pytest.raises(InputError, match="--batch-size 4$|--batch-size 4\\.$"):
        check_config(OK.replace(distribution=native, batch_size=3))


@pytest.mark.tf_only(reason="TF_CONFIG describes tf.distribute workers")
def test_auto_refuses_multi_worker_naming_the_upstream_bug(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:1"]}}')
    with pytest.raises(InputError, match=r"keras-team/keras#20585"):
        check_config(OK)
    check_config(OK.replace(distribution="none"))  # one device: TF_CONFIG is not used


def test_the_cli_refuses_a_bad_distribution_before_writing(tmp_path, capsys):
    from imet_kit.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path), "--out", str(out), "--backbone", "tiny_cnn",
                 "--weights", "none", "--distribution", "spread"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "distribution: unknown 'spread', expected one of auto, none" in err[0]
    assert not out.exists()


def test_tensorflow_only_choices_are_refused_up_front_in_one_line(tmp_path, capsys, monkeypatch):
    """efn_b* and --distribution mirrored under JAX: one line, both fixes, nothing written, before
    any model is built. Under TensorFlow the test plays a JAX process (what imet_kit sees)."""
    from imet_kit.cli.main import main
    from imet_kit.data.demo import make_demo_dataset

    if keras.backend.backend() == "tensorflow":
        monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    make_demo_dataset(tmp_path / "data", n_train=8, n_test=2, seed=1)
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(out), "--backbone", "efn_b0",
                 "--weights", "none", "--distribution", "mirrored"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("imet-kit train: error: 2 problems in the config: ")
    assert ("backbone: 'efn_b0' is efficientnet.tfkeras.EfficientNetB0 (TensorFlow ops inside), "
            "which needs KERAS_BACKEND=tensorflow; this process runs KERAS_BACKEND=jax. Set "
            "KERAS_BACKEND=tensorflow, or use --backbone efficientnet_b0") in err
    assert ("distribution: 'mirrored' is tf.distribute.MirroredStrategy, which needs "
            "KERAS_BACKEND=tensorflow; this process runs KERAS_BACKEND=jax. Set "
            "KERAS_BACKEND=tensorflow, or use --distribution data-parallel, auto or none") in err
    assert not out.exists()
    assert name_problems(OK.replace(backbone="efficientnet_b0")) == []  # the fix it names passes


def test_distribution_may_change_on_resume():
    from imet_kit.training.start import check_resume_config

    check_resume_config(OK, OK.replace(distribution="mirrored"))
    with pytest.raises(InputError, match="batch_size"):  # the global batch is what is learned
        check_resume_config(OK, OK.replace(batch_size=16))
