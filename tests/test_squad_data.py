"""Reading SQuAD JSON: reference whitespace splitting and clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import DataError
from squad.examples import read_squad_examples, split_context
from tests.helpers import write_squad


def test_split_context_uses_the_reference_whitespace_set() -> None:
    # U+202F splits (as in the reference); U+00A0 (no-break space) does not.
    assert split_context(" a\tb\r\nc\u202fd  e ") == ["a", "b", "c", "d", "e"]
    assert split_context("x\u00a0y") == ["x\u00a0y"]
    assert split_context("") == []


def test_examples_keep_file_order_and_answers(tmp_path: Path) -> None:
    path = write_squad(
        tmp_path / "d.json",
        [("One two.", [("a", "Q1?", ["two"]), ("b", "Q2?", ["One", "one"])]),
         ("Three", [("c", "Q3?", [])])],
    )
    examples = read_squad_examples(path)
    assert [e.qas_id for e in examples] == ["a", "b", "c"]
    assert examples[1].answers == ("One", "one")
    assert examples[0].doc_tokens == ("One", "two.")
    assert examples[2].answers == ()


def test_full_dev_set_has_10570_questions(squad_dir: Path) -> None:
    examples = read_squad_examples(squad_dir / "dev-v1.1.json")
    assert len(examples) == 10570
    # the first 8 articles (the demo model's held-out split) hold the first 2804 questions
    assert examples[0].qas_id == "56be4db0acb8001400a502ec"


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"data": [', "not valid JSON"),
        ('{"version": "1.1"}', "no top-level 'data' list"),
        ('{"data": [{"title": "x"}]}', "data[0] has no 'paragraphs' list"),
        ('{"data": [{"paragraphs": [{"qas": []}]}]}', "has no 'context' string"),
        ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": 1}]}]}]}', "qas[0] needs"),
        ("\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_files_name_the_file_and_the_problem(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "dev-v1.1.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(DataError) as info:
        read_squad_examples(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_squad_examples(tmp_path / "nope.json")
