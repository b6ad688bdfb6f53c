"""Reading SQuAD v1.1 JSON into examples, the way the MLPerf BERT reference does.

Pure functions: no tokenizer, no caching. Examples keep file order, which is what
``--max-examples N`` (the first N questions) and the accuracy scripts rely on.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from common.errors import DataError

# The reference splits contexts on these characters only (not on every Unicode space).
_CONTEXT_WHITESPACE = frozenset(" \t\r\n\u202f")


@dataclasses.dataclass(frozen=True)
class SquadExample:
    """One question: its id, text, the paragraph's whitespace tokens and the gold answers."""

    qas_id: str
    question_text: str
    doc_tokens: tuple[str, ...]
    answers: tuple[str, ...]


def split_context(text: str) -> list[str]:
    """Whitespace-split a paragraph exactly as the reference ``read_squad_examples`` does."""
    tokens: list[str] = []
    previous_was_space = True
    for char in text:
        if char in _CONTEXT_WHITESPACE:
            previous_was_space = True
            continue
        if previous_was_space:
            tokens.append(char)
        else:
            tokens[-1] += char
        previous_was_space = False
    return tokens


def load_squad_json(path: Path) -> list[dict[str, Any]]:
    """Load and validate a SQuAD v1.1 file; return its ``data`` (list of articles).

    Raises :class:`DataError` naming the file and the first problem found.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found (run `make data`)") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path}: not valid JSON ({exc}); delete it and run `make data` to fetch it again"
        ) from exc
    articles = document.get("data") if isinstance(document, dict) else None
    if not isinstance(articles, list):
        raise DataError(f"{path}: no top-level 'data' list; this is not a SQuAD v1.1 file")
    for a_index, article in enumerate(articles):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise DataError(f"{path}: data[{a_index}] has no 'paragraphs' list")
        for p_index, paragraph in enumerate(paragraphs):
            where = f"data[{a_index}].paragraphs[{p_index}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str):
                raise DataError(f"{path}: {where} has no 'context' string")
            if not isinstance(paragraph.get("qas"), list):
                raise DataError(f"{path}: {where} has no 'qas' list")
            for q_index, qa in enumerate(paragraph["qas"]):
                if not (
                    isinstance(qa, dict)
                    and isinstance(qa.get("id"), str)
                    and isinstance(qa.get("question"), str)
                    and isinstance(qa.get("answers", []), list)
                ):
                    raise DataError(
                        f"{path}: {where}.qas[{q_index}] needs string 'id' and 'question' "
                        "and an 'answers' list"
                    )
    return articles


def examples_from_articles(articles: list[dict[str, Any]]) -> list[SquadExample]:
    """Flatten validated articles into examples, in file order."""
    examples: list[SquadExample] = []
    for article in articles:
        for paragraph in article["paragraphs"]:
            doc_tokens = tuple(split_context(paragraph["context"]))
            for qa in paragraph["qas"]:
                answers = tuple(
                    answer["text"]
                    for answer in qa.get("answers", [])
                    if isinstance(answer, dict) and isinstance(answer.get("text"), str)
                )
                examples.append(SquadExample(qa["id"], qa["question"], doc_tokens, answers))
    return examples


def read_squad_examples(path: Path) -> list[SquadExample]:
    """Read a SQuAD v1.1 file into examples (file order)."""
    return examples_from_articles(load_squad_json(path))
