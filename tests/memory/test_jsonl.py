"""Import-file validation: every malformed line is named by file and line number."""

from __future__ import annotations

from pathlib import Path

import pytest

from sedma.errors import InputError
from sedma.memory.jsonl import parse_line, read_jsonl

GOOD = '{"layer": "compute", "kind": "lambda", "key": "k", "value": {"lambda": 0.003}, "score": 0.9}'


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"layer": "a", "kind": "b", "key": "c"}', "missing field 'value'"),
        ('{"layer": "", "kind": "b", "key": "c", "value": 1}', "'layer' must be a non-empty string"),
        ('{"layer": "a", "kind": 2, "key": "c", "value": 1}', "'kind' must be a non-empty string"),
        (
            '{"layer": "a", "kind": "b", "key": "c", "value": 1, "score": "hi"}',
            "'score' must be a finite number",
        ),
        (
            '{"layer": "a", "kind": "b", "key": "c", "value": 1, "score": NaN}',
            "'score' must be a finite number",
        ),
        ('{"layer": "a", "kind": "b", "key": "c", "value": 1, "uses": -1}', "'uses' must be an integer"),
        ('{"layer": "a", "kind": "b", "key": "c", "value": 1, "colour": "red"}', "unknown field"),
        ('{"layer": "a", "kind": "b", "key": "c", "value": [NaN]}', "not JSON-serialisable"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, line: str, match: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(GOOD + "\n\n" + line + "\n" + GOOD + "\n")
    with pytest.raises(InputError, match=match) as err:
        read_jsonl(path)
    assert str(err.value).startswith(f"{path}:3: ")


def test_non_utf8_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(GOOD.encode() + b"\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"in\.jsonl:2: not UTF-8"):
        read_jsonl(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read import file"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_optional_fields_default() -> None:
    row = parse_line('{"layer": "a", "kind": "b", "key": "c", "value": [1]}')
    assert (row.score, row.uses, row.created_at, row.updated_at, row.value_json) == (
        0.0,
        None,
        None,
        None,
        "[1]",
    )
