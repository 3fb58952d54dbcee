"""vlab.errors' checks and warnings: what a user reads when a value is wrong or a result is doubtful."""

from __future__ import annotations

import asyncio
import warnings

import numpy as np
import pytest

from vlab.errors import ConfigError, VlabWarning, check_count, check_number, first_few, warn_user


@pytest.mark.parametrize(("value", "minimum"), [(0, 1), (-1, 0), (2.0, 1), ("3", 1), (True, 0), (None, 1)])
def test_a_count_is_an_integer_at_least_its_minimum(value, minimum):
    with pytest.raises(ConfigError) as info:
        check_count("repeats", value, minimum)
    assert str(info.value) == f"repeats must be an integer ≥ {minimum}, got {value!r}"


def test_a_count_at_its_minimum_passes():
    check_count("repeats", 1)
    check_count("timelines", 0, minimum=0)


@pytest.mark.parametrize(
    ("value", "minimum", "maximum", "said"),
    [
        (-1, 0.0, float("inf"), "a number ≥ 0"),
        (1.5, 0.0, 1.0, "a number from 0 to 1"),
        (float("nan"), 0.0, 1.0, "a number from 0 to 1"),
        ("0.5", 0.0, 1.0, "a number from 0 to 1"),
        (True, 0.0, 1.0, "a number from 0 to 1"),
        (None, -float("inf"), float("inf"), "a number"),
    ],
)
def test_a_number_is_refused_outside_its_range_or_when_it_is_none(value, minimum, maximum, said):
    with pytest.raises(ConfigError) as info:
        check_number("q", value, minimum, maximum)
    assert str(info.value) == f"q must be {said}, got {value!r}"


def test_a_number_in_range_passes_whatever_its_numeric_type():
    for value in (0, 1, 0.5, np.float32(0.25), np.int64(1)):
        check_number("q", value, maximum=1.0)


def test_a_message_names_the_first_few_and_says_there_are_more():
    assert first_few([]) == ""
    assert first_few(["a", "b"]) == "a, b"
    assert first_few(f"p{i}" for i in range(7)) == "p0, p1, p2, p3, p4 …"
    assert first_few(["a", "b", "c"], 2, sep="; ") == "a; b …"


def test_a_warning_points_at_the_user_s_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_user("doubtful")
    assert [(w.category, w.filename) for w in caught] == [(VlabWarning, __file__)]


async def test_a_warning_from_a_callback_vlab_started_is_not_put_on_a_line_inside_asyncio():
    loop = asyncio.get_running_loop()
    ran = loop.create_future()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop.call_soon(
            warn_user, "a tool call failed"
        )  # as a ToolRunner's task warns: no caller of the user's
        loop.call_soon(ran.set_result, None)
        await ran
    [warning] = caught
    assert str(warning.message) == "a tool call failed"
    assert warning.filename in (
        "sys",
        "<sys>",
    )  # Python's name for no caller (3.13: "<sys>"), not asyncio's file
