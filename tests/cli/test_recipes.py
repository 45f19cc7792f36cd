"""`imet-kit recipes` and `train --recipe list`."""

import json

from imet_kit.cli.main import main


def test_recipes_lists_and_shows(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["cpu", "notebook"]
    assert main(["recipes", "cpu"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["backbone"] == "plain_cnn" and shown["recipe"] == "cpu"
    assert main(["train", "--recipe", "list"]) == 0
    assert "notebook" in capsys.readouterr().out


def test_unknown_recipe_is_one_line_exit_2(capsys):
    assert main(["train", "--data", "x", "--recipe", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Expected one of: cpu, notebook" in err
