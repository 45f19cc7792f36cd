"""Named recipes (imet_kit/recipes/*.json, loaded by imet_kit.config): shipped, valid, checked."""

import configparser
from pathlib import Path

import pytest

from imet_kit import config as config_mod
from imet_kit.config import TrainConfig, load_recipe, recipe_about, recipe_names
from imet_kit.errors import InputError
from imet_kit.training.validate import check_config, name_problems

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_recipes_resolve_and_pass_every_check():
    assert {"notebook", "cpu"} <= set(recipe_names())
    for name in recipe_names():
        cfg = TrainConfig.from_recipe(name, data="d")
        check_config(cfg)  # names and numbers, like any config
        assert cfg.recipe == name and recipe_about(name)


def test_notebook_recipe_is_todays_defaults():
    assert TrainConfig.from_recipe("notebook") == TrainConfig(recipe="notebook")


def test_cpu_recipe_is_the_measured_one():
    cfg = TrainConfig.from_recipe("cpu")
    assert (cfg.backbone, cfg.weights, cfg.image_size, cfg.lr_schedule, cfg.lr, cfg.augment,
            cfg.epochs, cfg.folds, cfg.train_folds) == (
        "plain_cnn", None, 96, "cosine", 2e-3, "light", 30, 5, (0,))
    assert (cfg.resize, cfg.flip, cfg.pooling, cfg.batch_size) == ("squash", False, "avgmax", 64)
    assert cfg.embedding_dim == 0  # the pooled features feed the sigmoid layer, as in the reference CNN
    assert cfg.workers == 2  # loading overlaps the model step: 104 vs 80 img/s on 2 cores
    assert TrainConfig.from_recipe("cpu", epochs=3).epochs == 3  # overrides win


def test_unknown_recipe_lists_the_choices_and_is_a_config_problem():
    with pytest.raises(InputError, match=r"Unknown recipe 'fast'\. Expected one of: cpu, notebook"):
        load_recipe("fast")
    assert any("recipe: unknown 'fast', expected one of cpu, notebook" in p
               for p in name_problems(TrainConfig(weights=None, recipe="fast")))


def test_a_broken_recipe_file_is_reported_by_name(tmp_path, monkeypatch):
    (tmp_path / "bad.json").write_text('{"epochs": "ten", "_about": "x"}')
    (tmp_path / "typo.json").write_text('{"epoch": 3}')
    monkeypatch.setattr(config_mod, "_recipe_files",
                        lambda: {p.stem: p for p in tmp_path.glob("*.json")})
    with pytest.raises(InputError, match=r"recipe bad: epochs: expected int"):
        load_recipe("bad")
    with pytest.raises(InputError, match=r"recipe typo: unknown field\(s\) epoch"):
        load_recipe("typo")


def test_recipes_ship_as_package_data():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert "recipes/*.json" in cfg["options.package_data"]["imet_kit"]
    assert sorted(p.stem for p in (ROOT / "imet_kit" / "recipes").glob("*.json")) == recipe_names()
