"""`imet-kit backbones`: every registered backbone with default size, input range, parameters."""

import json

from imet_kit.cli.main import main
from imet_kit.models import BACKBONES


def test_lists_every_backbone_with_size_and_parameters(capsys):
    assert main(["backbones"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines[1:-1]]
    assert names == list(BACKBONES)
    row = next(line.split() for line in lines if line.startswith("resnet50 "))
    assert row[1:4] == ["224", "caffe", "23.6M"]
    assert "tiny_cnn" in names and lines[-1].startswith("hub:<preset>")
    assert "keras-hub" in lines[-1]


def test_json_and_filter(capsys):
    assert main(["backbones", "--filter", "convnext", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["convnext_base", "convnext_large", "convnext_small",
                                         "convnext_tiny", "convnext_xlarge"]
    assert all(r["default_size"] == 224 and r["input_range"] == "0-255" and r["params"] > 1e7
               for r in rows)
    assert main(["backbones", "--filter", "tiny_cnn", "--json"]) == 0
    (tiny,) = json.loads(capsys.readouterr().out)
    assert 1000 < tiny["params"] < 10_000  # imet_kit's own are counted by building them
