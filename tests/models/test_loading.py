"""imet_kit.models.loading: a saved classifier and an embedding model with a margin head load back
with every imet_kit layer and give the same outputs; a missing, truncated, non-zip or non-model
file raises InputError naming the file; a model with a Lambda layer is refused without running it."""

import zipfile

import keras
import numpy as np
import pytest

from imet_kit.errors import InputError
from imet_kit.models.classifier import build_classifier
from imet_kit.models.loading import load_model
from imet_kit.models.margins import build_embedding_model

X = np.random.default_rng(0).uniform(0, 255, (3, 33, 31, 3)).astype(np.float32)  # odd h, w


def _run(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_classifier("tiny_cnn", 4, input_size=(33, 31), pooling="gem", embedding_dim=8)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    model.optimizer.build(model.trainable_variables)  # as after a step: its slots are saved too
    path = tmp_path_factory.mktemp("m") / "best.keras"
    model.save(path)
    return path, model


def test_classifier_round_trip(classifier_file):
    path, model = classifier_file
    back = load_model(path)
    assert back.input_shape == (None, 33, 31, 3) and back.output_shape == (None, 4)
    assert back.get_layer("pool").__class__.__name__ == "GeMPooling2D"
    np.testing.assert_allclose(_run(back, X), _run(model, X), atol=1e-6)
    assert back.optimizer.__class__ is keras.optimizers.Adam  # compiled: resumable
    assert len(back.optimizer.variables) == len(model.optimizer.variables)
    assert getattr(load_model(path, compile=False), "optimizer", None) is None


@pytest.mark.parametrize("head", ["arcface", "subcenter_arcface"])
def test_embedding_model_with_margin_head_round_trip(tmp_path, head):
    keras.utils.set_random_seed(1)
    backbone = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3)])
    models = build_embedding_model(backbone, 5, head=head, embedding_dim=6, scale=16.0)
    models.train_model.save(tmp_path / "train.keras")
    models.embedding_model.save(tmp_path / "emb.keras")
    x = {"image": X[:, :16, :16], "label": np.array([0, 3, 4])}
    train = load_model(tmp_path / "train.keras", compile=False)
    assert train.get_layer("margin_head").__class__ is models.train_model.get_layer("margin_head").__class__
    np.testing.assert_allclose(_run(train, x), _run(models.train_model, x), atol=1e-5)
    emb = load_model(tmp_path / "emb.keras", compile=False)
    np.testing.assert_allclose(_run(emb, x["image"]), _run(models.embedding_model, x["image"]),
                               atol=1e-6)


def _refused(path, *parts):
    with pytest.raises(InputError) as exc:
        load_model(path)
    msg = str(exc.value)
    assert f"'{path}'" in msg, msg  # names the file
    assert all(p in msg for p in parts), msg
    return msg


def test_missing_file(tmp_path):
    _refused(tmp_path / "fold0" / "best.keras", "does not exist")


def test_truncated_file(classifier_file, tmp_path):
    data = classifier_file[0].read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(data[: len(data) // 2])  # a copy that stopped half way
    _refused(cut, "not a Keras .keras archive")


def test_not_a_zip_file(tmp_path):
    bad = tmp_path / "model.keras"
    bad.write_text("this is a text file")
    _refused(bad, "not a Keras .keras archive")


def test_a_zip_that_is_not_a_model(tmp_path):
    bad = tmp_path / "other.keras"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("readme.txt", "hello")
    _refused(bad)


def test_a_lambda_layer_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "ran.txt"
    # the function leaves a mark when run; built from source so that its code is saved in the file
    fn = eval(f"lambda x: (open({str(marker)!r}, 'a').write('ran'), x)[1]")
    inp = keras.Input((3,))
    keras.Model(inp, keras.layers.Lambda(fn)(inp)).save(tmp_path / "lambda.keras")
    marker.unlink()  # building the model ran it once
    msg = _refused(tmp_path / "lambda.keras", "Lambda")
    assert "does not run code from model files" in msg and "\n" not in msg
    assert not marker.exists()
