"""imet_kit.config: TrainConfig survives its JSON round trip, refuses unknown fields and wrong types
(all of them in one error), checks every range, and load_config_file names what is wrong with the
file. Names against registries are tested in tests/training/test_validate.py."""

import dataclasses
import json

import pytest

from imet_kit.config import TrainConfig, load_config_file, raise_problems
from imet_kit.errors import InputError


def test_json_round_trip_keeps_every_field(tmp_path):
    cfg = TrainConfig(data="d", out="o", train_folds=(0, 2), weights=None, image_size=None,
                      patience=3, extra={"note": "x"}, lr=1e-3)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_dict()))
    back = TrainConfig.from_dict(load_config_file(path))
    assert back == cfg and back.train_folds == (0, 2)
    assert cfg.to_dict()["train_folds"] == [0, 2]  # JSON has lists, not tuples


def test_replace_returns_a_new_frozen_config():
    cfg = TrainConfig()
    other = cfg.replace(epochs=2)
    assert (cfg.epochs, other.epochs) == (8, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3


def test_unknown_fields_are_named_with_the_known_ones():
    with pytest.raises(InputError) as exc:
        TrainConfig.from_dict({"epochz": 3, "lr": 0.1, "bakbone": "x"}, source="my.json")
    msg = str(exc.value)
    assert msg.startswith("my.json: unknown field(s) bakbone, epochz.")
    assert "backbone" in msg and "epochs" in msg  # what was meant is among the choices


def test_every_wrong_type_is_listed_in_one_error():
    bad = {"epochs": "ten", "lr": "fast", "train_folds": [0, "1"], "use_multiprocessing": 1,
           "folds": True, "weights": 3}
    with pytest.raises(InputError) as exc:
        TrainConfig.from_dict(bad, source="c.json")
    msg = str(exc.value)
    assert msg.startswith("6 problems in the config:")
    for part in ("c.json: epochs: expected int, received 'ten' (str)",
                 "c.json: lr: expected float, received 'fast'",
                 "train_folds: expected tuple[int, ...] or null",
                 "use_multiprocessing: expected bool, received 1 (int)",
                 "folds: expected int, received True (bool)",  # a bool is not an int here
                 "weights: expected str or null, received 3"):
        assert part in msg, part


def test_ints_are_accepted_for_floats_and_null_where_allowed():
    cfg = TrainConfig.from_dict({"lr": 1, "warmup_epochs": 0, "weights": None, "patience": None})
    assert cfg.lr == 1 and cfg.weights is None and cfg.patience is None


@pytest.mark.parametrize("changes, field", [
    ({"folds": 1}, "folds"), ({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"),
    ({"lr": 0.0}, "lr"), ({"image_size": 8}, "image_size"), ({"warmup_epochs": -1.0}, "warmup_epochs"),
    ({"mixed_precision": "fp8"}, "mixed_precision"), ({"jit_compile": "yes"}, "jit_compile"),
    ({"min_labels": 3, "max_labels": 2}, "min_labels/max_labels"),
    ({"min_labels": 0}, "min_labels/max_labels"),
    ({"head_warmup_epochs": 8}, "head_warmup_epochs"), ({"workers": 0}, "workers"),
    ({"dropout": 1.0}, "dropout"), ({"f2_interval": 0}, "f2_interval"), ({"patience": 0}, "patience"),
    ({"embedding_dim": -1}, "embedding_dim"),
    ({"task": "embedding", "embedding_dim": 0}, "embedding_dim"), ({"seed": -1}, "seed"),
    ({"train_folds": (0, 5)}, "fold"),
])
def test_each_range_is_checked(changes, field):
    problems = TrainConfig(**changes).problems()
    # (epochs 0 also breaks head_warmup_epochs < epochs: a second problem after the first)
    assert problems and problems[0].startswith(f"{field}:"), problems
    with pytest.raises(InputError, match=field):
        TrainConfig(**changes).validated()


def test_the_defaults_and_edges_are_valid():
    assert TrainConfig().problems() == []
    edges = TrainConfig(folds=2, epochs=1, image_size=16, dropout=0.0, max_labels=1,
                        train_folds=(0, 1), patience=1, seed=0)
    assert edges.problems() == [] and edges.validated() is edges


def test_several_problems_are_one_error_with_a_count():
    cfg = TrainConfig(folds=1, batch_size=0, lr=-1.0)
    with pytest.raises(InputError) as exc:
        cfg.validated()
    msg = str(exc.value)
    assert msg.startswith("3 problems in the config:")
    assert "folds: expected an integer >= 2, received 1" in msg
    assert "batch_size: expected an integer >= 1, received 0" in msg
    assert "lr: expected a positive number, received -1.0" in msg


def test_raise_problems():
    raise_problems([])  # nothing to say: no error
    with pytest.raises(InputError, match=r"^Invalid x: bad\.$"):
        raise_problems(["x: bad"])


def test_load_config_file_errors(tmp_path):
    with pytest.raises(InputError, match="'.*nope.json' does not exist"):
        load_config_file(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{epochs: 3")
    with pytest.raises(InputError, match="is not valid JSON"):
        load_config_file(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="must hold a JSON object"):
        load_config_file(tmp_path / "list.json")
    (tmp_path / "ok.json").write_text('{"epochs": 3}')
    assert load_config_file(tmp_path / "ok.json") == {"epochs": 3}
