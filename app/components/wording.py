"""Small wording helpers for the pages' messages."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """``word`` for one, ``many`` (default ``word + "s"``) otherwise: "1 sample", "2 samples"."""
    return word if n == 1 else (many or f"{word}s")


def count(n: int, word: str, many: str | None = None) -> str:
    """``n`` with thousands separators and the word in the right number: "1 sample", "1,797 samples"."""
    return f"{n:,} {plural(n, word, many)}"


def number(value: object) -> str:
    """An int with thousands separators; anything else (a "?" for a count a run did not record) as is."""
    return f"{value:,}" if isinstance(value, int) else str(value)
