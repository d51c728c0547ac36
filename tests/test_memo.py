"""fhir_pain.memo.short_text_memo: short texts are kept (bounded), long ones answered and never kept."""
from __future__ import annotations

from fhir_pain.memo import short_text_memo


def test_short_texts_are_kept_long_ones_are_computed_each_time_and_never_kept():
    calls = []

    @short_text_memo(maxsize=2, longest=5)
    def upper(text, suffix=None):
        calls.append(text)
        return text.upper() + (suffix or "")

    assert upper("abc") == upper("abc") == "ABC"
    assert calls == ["abc"]                                   # the second answer came from the memo
    long = "x" * 6
    assert upper(long) == upper(long) == "XXXXXX"
    assert calls == ["abc", long, long]                       # computed each time
    assert upper("ab", "y" * 6) == "AByyyyyy"                 # any long text argument
    assert upper.cache_info().currsize == 1
    upper("r")
    upper("s")
    assert upper.cache_info().currsize == 2                   # bounded in entries
    upper.cache_clear()
    assert upper.cache_info().currsize == 0


def test_keep_short_keeps_short_keys_and_starts_afresh_when_full():
    from fhir_pain.memo import keep_short

    memo: dict = {}
    assert keep_short(memo, ("abc", None), 1, maxsize=2, longest=5) == 1
    assert memo == {("abc", None): 1}
    assert keep_short(memo, ("abc", "x" * 6), 2, maxsize=2, longest=5) == 2     # a long text: answered, not kept
    assert memo == {("abc", None): 1}
    keep_short(memo, ("b", None), 3, maxsize=2, longest=5)
    keep_short(memo, ("c", None), 4, maxsize=2, longest=5)                     # full: afresh, never above maxsize
    assert memo == {("c", None): 4}
