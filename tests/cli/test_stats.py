"""`imet-kit stats` (imet_kit.cli.stats): --json prints the report as JSON (with the holdout
baseline when the folder has one), --no-plot writes nothing into the dataset folder."""

import json

import cv2
import numpy as np

from imet_kit.cli.main import main


def _folder(root, holdout):
    (root / "labels.csv").write_text("attribute_id,attribute_name\n0,culture::a\n1,tag::x\n2,tag::y\n")
    (root / "train.csv").write_text("id,attribute_ids\nim0,0 1\nim1,1\nim2,1 2\n")
    (root / "train").mkdir()
    for i in range(3):
        cv2.imwrite(str(root / "train" / f"im{i}.png"), np.full((33, 31, 3), 40 * i, np.uint8))
    if holdout:
        (root / "holdout").mkdir()
        (root / "holdout" / "test_labels.csv").write_text("id,attribute_ids\nt0,1\nt1,0 1\n")


def test_json_report_with_the_holdout_baseline(tmp_path, capsys):
    _folder(tmp_path, holdout=True)
    assert main(["stats", "--data", str(tmp_path), "--json", "--no-plot"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["train"]["images"] == 3 and rep["train"]["groups"] == {"culture": 1, "tag": 2}
    assert rep["train"]["height_range"] == [33, 33] and rep["train"]["width_range"] == [31, 31]
    assert "most frequent" in rep["baseline"]["method"] and 0 < rep["baseline"]["test_f2"] <= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["holdout", "labels.csv", "train", "train.csv"]


def test_text_report_and_plot(tmp_path, capsys):
    _folder(tmp_path, holdout=False)
    assert main(["stats", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train images       3" in out and "baseline" not in out
    assert f"plot               {tmp_path / 'label_frequency.png'}" in out
    assert (tmp_path / "label_frequency.png").read_bytes()[:4] == b"\x89PNG"
