"""The binaries' error policy (`experiments/cli.py`) and the one error format (`josh_jax.errors`)."""

import pytest
from absl.testing import flagsaver

import body_models
from experiments import cli
from josh_jax import errors
from josh_jax.clip import ClipFormatError
from josh_jax.io.result_npz import ResultFormatError


def test_every_layer_error_shares_one_base_and_format():
    for cls in (body_models.ModelFormatError, ClipFormatError, ResultFormatError):
        e = cls("a/b.npz", "pointmaps", "shape [T, H, W, 3]", "shape (2, 3)\nsecond line")
        assert isinstance(e, errors.InputError) and isinstance(e, ValueError)
        assert str(e) == "a/b.npz: pointmaps: expected shape [T, H, W, 3], found shape (2, 3) second line"
        assert (e.file, e.field, e.found) == ("a/b.npz", "pointmaps", "shape (2, 3)\nsecond line")


def _raise(error):
    def main(argv):
        del argv
        raise error
    return main


def test_input_error_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as excinfo:
        cli.guard(_raise(ClipFormatError("c.npz", "fps", "a value > 0", "-1.0")))([])
    assert excinfo.value.code == 2
    assert capsys.readouterr().err == "error: c.npz: fps: expected a value > 0, found -1.0\n"


def test_missing_file_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as excinfo:
        cli.guard(_raise(FileNotFoundError(2, "No such file or directory", "nope.npz")))([])
    assert excinfo.value.code == 2
    assert capsys.readouterr().err == (
        "error: nope.npz: (file): expected an existing file, found no such file\n")


def test_verbose_shows_the_traceback_and_bugs_keep_theirs():
    error = ClipFormatError("c.npz", "fps", "a value > 0", "-1.0")
    with flagsaver.flagsaver(verbose=True), pytest.raises(ClipFormatError):
        cli.guard(_raise(error))([])
    with flagsaver.flagsaver(verbose=False), pytest.raises(ZeroDivisionError):
        cli.guard(_raise(ZeroDivisionError("a bug")))([])


def test_known_body_files_are_found_only_by_name():
    assert cli.body_model_path("mannequin") is None
    assert cli.body_model_path("smpl_neutral", "my/SMPL.pkl") == "my/SMPL.pkl"
    path = cli.body_model_path("synthetic_smpl_neutral")
    assert path is not None and path.endswith("synthetic_smpl_neutral.npz")
