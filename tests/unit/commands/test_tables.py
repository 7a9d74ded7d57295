import datetime
import json

import pytest
import yaml

from kubelb.commands import tables


def test_table_aligns_columns_and_strips_trailing_spaces():
    text = tables.table(
        ("NAME", "ADDRESS", "AGE"), [("web", "10.0.0.1", "5s"), ("database", "<pending>", "")]
    )
    assert text.splitlines() == [
        "NAME       ADDRESS     AGE",
        "web        10.0.0.1    5s",
        "database   <pending>",
    ]


def test_table_without_rows_is_empty():
    assert tables.table(("NAME",), []) == ""


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-3, "0s"),
        (45, "45s"),
        (119, "119s"),
        (125, "2m5s"),
        (180, "3m"),
        (42 * 60, "42m"),
        (5 * 3600 + 4 * 60, "5h4m"),
        (17 * 3600, "17h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (20 * 86400, "20d"),
        (800 * 86400, "2y"),
    ],
)
def test_human_duration_matches_kubectl(seconds, shown):
    assert tables.human_duration(seconds) == shown


def test_age_from_creation_timestamp():
    now = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert tables.age("2026-01-02T03:03:00Z", now) == "65s"
    assert tables.age(None, now) == "<unknown>"
    assert tables.age("yesterday", now) == "<invalid>"


def test_documents_parse_back():
    data = tables.as_list([{"kind": "LoadBalancer", "metadata": {"name": "a"}}])
    assert json.loads(tables.document(data, "json")) == data
    assert yaml.safe_load(tables.document(data, "yaml")) == data
    with pytest.raises(ValueError, match="unknown output"):
        tables.document(data, "wide")
