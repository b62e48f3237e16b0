"""The test-only shims for the warehouse emulators do what docs/warehouses.md says."""

from __future__ import annotations

import pytest

from tests.emulators.sql_comments import without_comments


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("-- those testers' rows\nselect 1.5", " \nselect 1.5"),
        ("select 1 # it's\n", "select 1  \n"),
        ("select /* it's */ 'a'", "select   'a'"),
        ("select '--kept', \"#kept\", `x--y`", "select '--kept', \"#kept\", `x--y`"),
        ("select 'it\\'s -- kept' -- gone", "select 'it\\'s -- kept'  "),
        ("select 1 -- to the end", "select 1  "),
        ("select 1 /* never closed", "select 1  "),
        ("select 'a''b' -- c", "select 'a''b'  "),
    ],
)
def test_comments_go_and_everything_quoted_stays(sql, expected):
    assert without_comments(sql) == expected
