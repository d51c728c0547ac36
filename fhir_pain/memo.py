"""Memoising pure functions of texts a sender controls (codes, displays, drug names, result texts).

The same few texts recur across calls and patients, so their answers are kept; but a sender can send a megabyte
of text where a code belongs, and such a text must neither fill the memory nor evict the real ones. A call with a
text argument longer than ``longest`` is computed each time and never kept; the memo is bounded in entries.
"""
from __future__ import annotations

from functools import lru_cache, wraps
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


def short_text_memo(maxsize: int, longest: int) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        kept = lru_cache(maxsize=maxsize)(fn)

        @wraps(fn)
        def call(*args):
            for a in args:
                if type(a) is str and len(a) > longest:
                    return fn(*args)
            return kept(*args)

        call.cache_kept = kept                 # type: ignore[attr-defined]  # for callers that checked the lengths
        call.cache_info = kept.cache_info      # type: ignore[attr-defined]
        call.cache_clear = kept.cache_clear    # type: ignore[attr-defined]
        return call  # type: ignore[return-value]
    return decorate


def keep_short(memo: dict, key: tuple, value: object, *, maxsize: int, longest: int) -> object:
    """Keep ``value`` under ``key`` in a plain-dict memo that its caller reads directly (``memo[key]``, a KeyError
    when not kept: one look-up, no wrapper call, for the look-ups made for every resource of every call). Kept
    only when no text of the key is longer than ``longest``; a full memo starts afresh (bounded in entries)."""
    for a in key:
        if type(a) is str and len(a) > longest:
            return value
    if len(memo) >= maxsize:
        memo.clear()
    memo[key] = value
    return value
