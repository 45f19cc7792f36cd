"""TensorBoard per fold and the learning rate in the epoch logs: read the event files back and
compare them with the run's history files; `--no-tensorboard` writes none."""

import contextlib
import io
import math

import numpy as np
import pytest
import tensorflow as tf

from imet_kit.cli.main import main
from imet_kit.training.rundir import RunDir
from imet_kit.training.tensorboard import TENSORBOARD_DIR, batch_images, displayable

TINY = ["--backbone", "tiny_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "8",
        "--augment", "light", "--lr", "0.003"]


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """2 folds x 2 epochs, cosine schedule (the rate differs per epoch); stdout is a StringIO,
    not a terminal, as in a log file."""
    out = tmp_path_factory.mktemp("runs") / "run"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["train", "--data", str(data), "--out", str(out), "--folds", "2",
                     "--epochs", "2", "--lr-schedule", "cosine", *TINY]) == 0
    return out, stdout.getvalue()


def read_events(folder):
    """{tag: {step: value}} of scalars and {tag: [images uint8 (h, w, c)]} of image summaries."""
    scalars, images = {}, {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for v in event.summary.value:
                plugin = v.metadata.plugin_data.plugin_name
                if plugin == "images":
                    blobs = tf.make_ndarray(v.tensor)[2:]  # width, height, then the PNGs
                    images[v.tag] = [tf.io.decode_png(b).numpy() for b in blobs]
                else:
                    value = tf.make_ndarray(v.tensor) if v.HasField("tensor") else v.simple_value
                    scalars.setdefault(v.tag, {})[event.step] = float(value)
    return scalars, images


def test_one_folder_per_fold_with_the_history_files_scalars(trained):
    out, _ = trained
    run = RunDir(out)
    assert sorted(p.name for p in (out / TENSORBOARD_DIR).iterdir()) == ["fold0", "fold1"]
    for k in (0, 1):
        hist = run.read_history(k)
        assert [h["epoch"] for h in hist] == [0, 1]
        train, _ = read_events(out / TENSORBOARD_DIR / f"fold{k}" / "train")
        val, _ = read_events(out / TENSORBOARD_DIR / f"fold{k}" / "validation")
        for events, tag, key in ((train, "epoch_loss", "loss"),
                                 (train, "epoch_learning_rate", "learning_rate"),
                                 (val, "epoch_f2", "val_f2"),
                                 (val, "epoch_threshold", "val_threshold")):
            assert sorted(events[tag]) == [0, 1], tag
            assert [events[tag][e] for e in (0, 1)] == pytest.approx(
                [h[key] for h in hist], rel=1e-6), tag


def test_learning_rate_is_the_schedules_value_at_each_epochs_end(trained):
    from imet_kit.training.optim import make_schedule

    out, _ = trained
    run = RunDir(out)
    cfg = run.load_config()
    folds = run.load_folds()["fold"].to_numpy()
    for k in (0, 1):
        steps = math.ceil(int((folds != k).sum()) / cfg.batch_size)
        schedule = make_schedule(cfg, steps)
        want = [float(schedule(steps * (e + 1))) for e in (0, 1)]
        hist = run.read_history(k)
        assert [h["learning_rate"] for h in hist] == pytest.approx(want, rel=1e-6)
        assert [h["lr"] for h in hist] == pytest.approx(want, rel=1e-6)
        assert want[0] > want[1]  # cosine decays: a constant rate would not catch a stale value


def test_the_image_summary_is_the_first_augmented_batch(trained):
    from imet_kit.multilabel.task import MultilabelTask

    out, _ = trained
    run = RunDir(out)
    cfg = run.load_config()
    task = MultilabelTask()
    data = task.load_data(cfg)
    folds = run.load_folds()["fold"].to_numpy()
    setup = task.setup_fold(cfg, data, np.flatnonzero(folds != 0), np.flatnonzero(folds == 0), 32)
    # fit resets the loader before the first epoch (Keras calls on_epoch_end once more than
    # there are epochs), so the first epoch trains on the loader's epoch 1: batch 0 of that
    setup.train.epoch = 1
    x = setup.train[0][0]  # 0-255 floats
    _, images = read_events(out / TENSORBOARD_DIR / "fold0" / "train")
    shown = np.stack(images["augmented_batch"])
    assert shown.shape == (min(8, len(x)), 32, 32, 3)
    want = displayable(x[: len(shown)]) * 255.0
    assert np.abs(shown.astype(np.float32) - want).max() <= 1.0


def test_the_per_epoch_log_line_carries_the_learning_rate(trained):
    _, stdout = trained
    lines = [line for line in stdout.splitlines() if "val_f2" in line and "loss" in line]
    assert len(lines) == 4, stdout  # one line per epoch, 2 folds x 2 epochs; no progress bar
    assert all("learning_rate" in line and "\x08" not in line for line in lines)


def test_no_tensorboard_writes_none_and_a_resume_may_switch_it_on(data, tmp_path, capsys):
    """The flag is an output setting: the run resumes with it changed (RESUME_FREE_FIELDS)."""
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--folds", "2", "--epochs", "1",
                 "--fold", "0", "--no-tensorboard", *TINY]) == 0
    assert not (out / TENSORBOARD_DIR).exists()
    assert main(["train", "--out", str(out), "--resume", "--fold", "1", "--tensorboard"]) == 0
    assert sorted(p.name for p in (out / TENSORBOARD_DIR).iterdir()) == ["fold1"]
    _, images = read_events(out / TENSORBOARD_DIR / "fold1" / "train")
    assert "augmented_batch" in images


def test_help_shows_the_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0 and "--no-tensorboard" in capsys.readouterr().out


def test_batch_images_and_their_display_range():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    code = np.zeros(2, np.int32)
    assert np.array_equal(batch_images((x, code)), x)
    assert np.array_equal(batch_images(({"image": x, "label": code}, code)), x)  # embedding task
    np.testing.assert_allclose(displayable(x), x / 255.0)  # 0-255 pixels
    np.testing.assert_allclose(displayable(x / 100.0), x / 100.0)  # already in [0, 1]
    normed = displayable(x - 40.0)  # a normalised input: stretched per image
    for img, raw in zip(normed, x - 40.0):
        np.testing.assert_allclose(img, (raw - raw.min()) / (raw.max() - raw.min()), rtol=1e-6)
