"""`imet-kit lr-find`: train flags and recipes apply; a PNG and a suggested lr; no run folder."""

import re

from imet_kit.cli.main import main
from imet_kit.data.demo import make_demo_dataset


def test_lr_find_prints_a_suggestion_inside_the_range_and_draws_the_plot(tmp_path, monkeypatch,
                                                                         capsys):
    data = tmp_path / "data"
    make_demo_dataset(data, n_train=32, n_test=4, seed=4)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code = main(["lr-find", "--data", str(data), "--recipe", "cpu", "--backbone", "tiny_cnn",
                 "--image-size", "32", "--batch-size", "8", "--folds", "2", "--steps", "24",
                 "--start-lr", "1e-5", "--end-lr", "1", "--plot", "lr.png"])
    assert code == 0
    out = capsys.readouterr().out
    lr = float(re.search(r"suggested lr: ([0-9.e+-]+) \(min10\)", out).group(1))
    assert 1e-5 <= lr <= 1
    assert (work / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in work.iterdir()] == ["lr.png"]  # no run folder, no other file


def test_lr_find_rejects_a_bad_suggestion_name(capsys):
    assert main_exit(["lr-find", "--data", "x", "--suggest", "valley"]) == 2
    assert "invalid choice: 'valley'" in capsys.readouterr().err


def main_exit(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code
