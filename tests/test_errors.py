"""One readable line for a bundle input error, whatever wraps it; other errors keep their own traceback."""

from __future__ import annotations

import json
import sys

import pytest

from bundle import check_datalist
from bundle.errors import install_error_summary, run_main, user_error


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


def test_the_summary_hook_prints_the_line_last_and_installs_once(monkeypatch, capsys):
    printed = []
    monkeypatch.setattr(sys, "excepthook", lambda *args: printed.append(args[0]))
    install_error_summary()
    install_error_summary()
    error = _bundle_error()
    sys.excepthook(type(error), error, error.__traceback__)
    assert printed == [ValueError]  # the previous hook (the traceback) still runs, once
    assert capsys.readouterr().err.splitlines()[-1] == "error: training[0] (/nowhere/a.png): image file not found."
