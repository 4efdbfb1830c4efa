"""A policy document's messages: a string (English) or a table of language tag -> text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from regionlock.domain.messages import MAX_TEXT, Message, message_problems

__all__ = ["Message", "read_message"]


def read_message(
    obj: dict[str, Any], key: str, path: str, fail: Callable[[str, str], None]
) -> Message:
    """`obj[key]` as a Message (absent: none); every problem reported through `fail`, with
    its path down to the language (`restriction[0].message.fa`)."""
    value = obj.get(key)
    if value is None:
        return Message()
    where = f"{path}.{key}"
    problems = message_problems(value, limit=MAX_TEXT)
    for language, problem in problems:
        fail(f"{where}.{language}" if language else where, problem)
    return Message() if problems else Message.from_checked(value)
