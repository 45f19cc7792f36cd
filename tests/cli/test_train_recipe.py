"""`imet-kit train` flags of the recipe fields (issue 12): parsed into the config, listed in help."""

import pytest

from imet_kit.cli.main import build_parser, main
from imet_kit.cli.train import resolve_config


def _config(*flags):
    return resolve_config(build_parser().parse_args(["train", "--data", "d", *flags]))


def test_recipe_flags_reach_the_config():
    cfg = _config("--resize", "pad", "--no-flip", "--mixup", "0.2", "--cutmix", "1", "--ema", "0.999",
                  "--clipnorm", "1.5", "--weight-decay", "0.05", "--label-smoothing", "0.1",
                  "--grad-accum-steps", "4", "--lr-schedule", "onecycle", "--pooling", "avgmax",
                  "--augment", "randaugment", "--backbone", "plain_cnn", "--embedding-dim", "0")
    assert cfg.embedding_dim == 0 and _config().embedding_dim == 512
    assert (cfg.resize, cfg.flip, cfg.mixup, cfg.cutmix, cfg.ema, cfg.clipnorm, cfg.weight_decay,
            cfg.label_smoothing, cfg.grad_accum_steps, cfg.lr_schedule, cfg.pooling, cfg.augment,
            cfg.backbone) == ("pad", False, 0.2, 1.0, 0.999, 1.5, 0.05, 0.1, 4, "onecycle", "avgmax",
                              "randaugment", "plain_cnn")
    assert _config("--flip", "false").flip is False and _config("--flip", "yes").flip is True
    assert _config("--clipnorm", "none").clipnorm is None
    default = _config()
    assert (default.resize, default.flip, default.mixup, default.ema, default.clipnorm,
            default.weight_decay, default.grad_accum_steps) == ("crop", True, 0.0, 0.0, None, None, 1)


def test_help_lists_the_choices(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("crop (default", "squash", "pad (letterbox", "--no-flip", "randaugment", "avgmax",
                 "onecycle", "plain_cnn", "resnet_small", "--grad-accum-steps", "--label-smoothing", "--embedding-dim", "0: none"):
        assert text in out, text


def test_a_bad_recipe_value_is_one_line_exit_2(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--resize", "fit",
                 "--cutmix", "3", "--embedding-dim", "-1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "resize: unknown 'fit'" in err and "cutmix: expected" in err and "embedding_dim: expected" in err
    assert not (tmp_path / "r").exists()
