"""Everywhere a test can see a credential hide: log records (message, format string, arguments), values'
str and repr, and an exception's args and attributes (a vendor body kept on it)."""

from __future__ import annotations

import logging
from collections.abc import Iterable


def observable_texts(records: Iterable[logging.LogRecord], *values: object) -> list[str]:
    texts: list[str] = []
    for record in records:
        texts += [record.getMessage(), str(record.msg), repr(record.args)]
    for value in values:
        texts += [str(value), repr(value)]
        if isinstance(value, BaseException):
            texts += [repr(value.args), repr(vars(value))]
    return texts


def leaks(secret: str, records: Iterable[logging.LogRecord], *values: object) -> list[str]:
    """The texts that show ``secret``: a test asserts there are none."""
    return [text for text in observable_texts(records, *values) if secret in text]
