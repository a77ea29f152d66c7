"""Switches from a config or the command line, parsed strictly (bundle/switches.py)."""

from __future__ import annotations

import pytest

from bundle import Switches, as_bool


@pytest.mark.parametrize(
    "value, expected",
    [(True, True), (False, False), (1, True), (0, False), ("true", True), ("False", False), (" TRUE ", True),
     ("0", False), ("1", True)],
)  # fmt: skip
def test_switches_parse_strictly(value, expected):
    assert as_bool(value, "overwrite") is expected


@pytest.mark.parametrize("value", ["no", "yes", "", "none", 2, 0.0, None, [True]])
def test_anything_else_is_an_error_naming_the_switch(value):
    with pytest.raises(ValueError, match=r"^overwrite must be true or false \(or 1 / 0\), got "):
        as_bool(value, "overwrite")


def test_a_runs_switches_are_parsed_once_by_one_component():
    switches = Switches(trust="false", refine=True, report="1")
    assert (switches.trust, switches.refine, switches.report) == (False, True, True)
    assert repr(switches) == "Switches(refine=True, report=True, trust=False)"
    with pytest.raises(ValueError, match="report must be true or false"):
        Switches(report="maybe")
