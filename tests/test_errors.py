"""imet_kit.errors: every error a user can act on is an ImetKitError (the CLI's one-line exit 2) and
also the builtin a caller would catch (ValueError, FileNotFoundError, OSError, RuntimeError);
ImageReadError's message names the file, the reason and the way out."""

import pytest

from imet_kit.cli.main import EXIT_USAGE, main
from imet_kit.errors import (
    DataFileError,
    ImageReadError,
    ImetKitError,
    InputError,
    WeightsUnavailableError,
    describe_choices,
)


@pytest.mark.parametrize("cls, builtins", [
    (InputError, (ValueError,)),
    (DataFileError, (InputError, ValueError, FileNotFoundError)),
    (ImageReadError, (OSError,)),
    (WeightsUnavailableError, (RuntimeError,)),
])
def test_each_error_is_an_imet_kit_error_and_the_builtin_callers_catch(cls, builtins):
    err = cls("x.png") if cls is ImageReadError else cls("message")
    assert isinstance(err, ImetKitError)
    for b in builtins:
        with pytest.raises(b):
            raise err


def test_image_read_error_names_file_reason_and_fix():
    err = ImageReadError("/data/train/a1.png", "truncated after 120 of 4000 bytes")
    msg = str(err)
    assert (err.path, err.reason) == ("/data/train/a1.png", "truncated after 120 of 4000 bytes")
    assert msg.startswith("Cannot read image '/data/train/a1.png': truncated after 120")
    assert "re-export or replace each file named" in msg
    assert "--skip-corrupt" not in msg  # only the commands that take the flag suggest it
    assert str(ImageReadError("b.jpg")).startswith("Cannot read image 'b.jpg'. Expected")
    assert err.describe("Pass --skip-corrupt to leave it out.").endswith(
        "Pass --skip-corrupt to leave it out.")


def test_describe_choices():
    assert describe_choices(["b", "a"]) == "b, a"  # the caller's order
    assert describe_choices({"x": 1, "y": 2}) == "x, y"
    assert describe_choices((1, 2.5)) == "1, 2.5"


def test_the_cli_turns_an_imet_kit_error_into_one_line_and_exit_2(tmp_path, capsys):
    assert EXIT_USAGE == 2
    assert main(["stats", "--data", str(tmp_path / "missing")]) == 2  # a DataFileError inside
    err = capsys.readouterr().err
    assert err.startswith("imet-kit stats: error: ") and err.count("\n") == 1
    assert "Traceback" not in err
