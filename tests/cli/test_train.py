"""`imet-kit train` flags: precedence defaults < --recipe < --config < flags; the new flags."""

import json

import pytest

from imet_kit.cli.main import build_parser
from imet_kit.cli.train import resolve_config


def resolve(argv):
    return resolve_config(build_parser().parse_args(["train", *argv]))


def test_precedence_defaults_recipe_config_flags(tmp_path):
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"epochs": 7, "lr": 0.01}))
    cfg = resolve(["--recipe", "cpu", "--config", str(cfg_file), "--lr", "0.02"])
    assert cfg.backbone == "plain_cnn" and cfg.lr_schedule == "cosine"  # recipe over defaults
    assert cfg.epochs == 7  # --config over the recipe
    assert cfg.lr == 0.02  # flags over --config
    assert cfg.dropout == 0.2  # untouched: the default
    assert cfg.recipe == "cpu"
    # a config file may name its recipe itself; a --recipe flag still wins
    cfg_file.write_text(json.dumps({"recipe": "cpu", "epochs": 4}))
    assert resolve(["--config", str(cfg_file)]).backbone == "plain_cnn"
    assert resolve(["--config", str(cfg_file), "--recipe", "notebook"]).backbone == "efficientnet_b3"


def test_long_tail_and_phase_flags():
    cfg = resolve(["--sampling", "logfreq", "--class-weight", "inverse_log", "--refit",
                   "--init-from", "runs/p1"])
    assert (cfg.sampling, cfg.class_weight, cfg.refit, cfg.init_from) == (
        "logfreq", "inverse_log", True, "runs/p1")
    assert resolve(["--refit", "false"]).refit is False
    assert resolve([]).sampling == "uniform" and resolve([]).refit is False


def test_help_lists_the_choices(capsys):
    from imet_kit.config import recipe_names
    from imet_kit.data.sampling import SAMPLINGS
    from imet_kit.models.losses import CLASS_WEIGHTS

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for flag, choices in (("--sampling", SAMPLINGS), ("--class-weight", CLASS_WEIGHTS),
                          ("--recipe", recipe_names())):
        text = out.split("options:")[1].split(flag + " ", 1)[1][:300]  # the flag's own help
        assert all(c in text for c in choices), (flag, text)
