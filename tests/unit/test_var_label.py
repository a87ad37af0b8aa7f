"""The io.envctl.vars label as both `status` paths read it (envctl/var_label.py)."""

import pytest

from envctl.var_label import parse_vars_label


@pytest.mark.parametrize("text", [None, ""])
def test_an_absent_or_empty_label_is_no_values(text):
    assert parse_vars_label(text) == {}


def test_the_values_envctl_wrote_are_read_back():
    assert parse_vars_label('{"steps": "20", "size": "3B"}') == {"steps": "20", "size": "3B"}


@pytest.mark.parametrize("text", ["{", "[1]", '"text"', '{"steps": 20}', '{"steps": null}'])
def test_a_label_envctl_did_not_write_is_none(text):
    assert parse_vars_label(text) is None
