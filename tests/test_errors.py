"""One readable line for a bundle input error, whatever wraps it; other errors keep their own traceback."""

from __future__ import annotations

import json
import sys

import pytest

from bundle import check_datalist
from bundle.error_line import install_error_summary, run_main
from bundle.errors import (
    BundleError,
    DivergedError,
    InputError,
    MissingFileError,
    OutputExistsError,
    user_error,
)


def _bundle_error() -> ValueError:
    try:
        check_datalist([{"image": "/nowhere/a.png"}], 6, name="training")
    except ValueError as e:
        return e
    raise AssertionError("check_datalist accepted a missing image")


def test_the_bundle_error_is_found_under_the_wrappers():
    inner = _bundle_error()
    try:
        try:
            raise inner
        except ValueError as e:
            raise RuntimeError("Failed to instantiate component 'bundle.check_datalist'") from e
    except RuntimeError as wrapped:
        assert user_error(wrapped) is inner
    assert str(inner) == "training[0] (/nowhere/a.png): image file not found."


def test_errors_of_other_code_are_not_summarised():
    with pytest.raises(json.JSONDecodeError) as raised:
        json.loads("{")
    assert user_error(raised.value) is None
    assert user_error(RuntimeError("no traceback")) is None


def test_scripts_end_in_one_line_for_input_errors_only(capsys):
    def bad_input():
        raise _bundle_error()

    assert run_main(bad_input) == 1
    assert capsys.readouterr().err == "error: training[0] (/nowhere/a.png): image file not found.\n"
    with pytest.raises(json.JSONDecodeError):  # a library's error keeps its traceback
        run_main(lambda: json.loads("{"))
    assert run_main(lambda: None) == 0


def test_the_summary_hook_prints_one_line_without_a_traceback_and_installs_once(monkeypatch, capsys):
    printed = []
    monkeypatch.delenv("BUNDLE_DEBUG", raising=False)
    monkeypatch.setattr(sys, "excepthook", lambda *args: printed.append(args[0]))
    install_error_summary()
    install_error_summary()
    error = _bundle_error()
    sys.excepthook(type(error), error, error.__traceback__)
    assert printed == []  # no traceback: the line says it all
    assert capsys.readouterr().err == "error: training[0] (/nowhere/a.png): image file not found.\n"
    other = RuntimeError("a bug")
    sys.excepthook(type(other), other, None)
    assert printed == [RuntimeError] and capsys.readouterr().err == ""  # anything else keeps its traceback, once


@pytest.mark.parametrize("how", ["switch", "environment"])
def test_debugging_keeps_the_traceback_above_the_line(monkeypatch, capsys, how):
    printed = []
    monkeypatch.setattr(sys, "excepthook", lambda *args: printed.append(args[0]))
    if how == "environment":
        monkeypatch.setenv("BUNDLE_DEBUG", "1")
    install_error_summary(debug=how == "switch")
    error = _bundle_error()
    sys.excepthook(type(error), error, error.__traceback__)
    assert printed == [InputError] and capsys.readouterr().err.endswith("image file not found.\n")


def test_the_bundles_errors_are_the_python_kinds_callers_expect():
    assert issubclass(InputError, ValueError) and issubclass(MissingFileError, FileNotFoundError)
    assert issubclass(OutputExistsError, FileExistsError) and issubclass(DivergedError, FloatingPointError)
    assert all(issubclass(e, BundleError) for e in (InputError, MissingFileError, OutputExistsError, DivergedError))
