"""Streaming NDJSON parsing: lines split anywhere across chunks, blank lines and CRLF, an over-long line, the
byte limit, and the origin check."""
from __future__ import annotations

import orjson
import pytest

from fhir_pain.population import ndjson

LINES = [{"resourceType": "Patient", "id": f"p{i}", "name": [{"text": "x" * i}]} for i in range(20)]
BODY = b"".join(orjson.dumps(r) + b"\n" for r in LINES)


@pytest.mark.parametrize("size", [1, 7, 64, len(BODY)])
def test_lines_split_across_any_chunk_boundary_parse_the_same(size):
    tally = ndjson.Tally()
    chunks = [BODY[i:i + size] for i in range(0, len(BODY), size)]
    assert list(ndjson.resources(chunks, tally)) == LINES
    assert (tally.resources, tally.malformed, tally.bytes) == (20, 0, len(BODY))


def test_crlf_blank_lines_and_a_missing_final_newline():
    body = b'{"resourceType":"Patient","id":"a"}\r\n\r\n\n{"resourceType":"Patient","id":"b"}'
    assert [r["id"] for r in ndjson.resources([body], ndjson.Tally())] == ["a", "b"]


def test_over_long_line_is_malformed_and_never_buffered_whole():
    long = b'{"resourceType":"Patient","id":"big","text":"' + b"y" * 5000 + b'"}\n'
    good = b'{"resourceType":"Patient","id":"ok"}\n'
    tally = ndjson.Tally()
    chunks = [good, long[:1000], long[1000:3000], long[3000:], good]
    assert [r["id"] for r in ndjson.resources(chunks, tally, max_line_bytes=2000)] == ["ok", "ok"]
    assert tally.malformed == 1 and tally.malformed_lines == [2]


def test_not_a_resource_is_malformed():
    tally = ndjson.Tally()
    body = b'{"id":"no-type"}\n42\n"text"\n{"resourceType":"Patient","id":"a"}\n'
    assert [r["id"] for r in ndjson.resources([body], tally)] == ["a"]
    assert tally.malformed_lines == [1, 2, 3]


def test_byte_limit_stops_the_stream():
    with pytest.raises(ndjson.FileTooLarge):
        list(ndjson.resources([BODY[:100], BODY[100:]], ndjson.Tally(), max_bytes=150))


@pytest.mark.parametrize("url", ["https://evil.example/f.ndjson", "http://fhir.example.org/f.ndjson",
                                 "https://fhir.example.org:8443/f.ndjson", "file:///etc/passwd",
                                 "ftp://fhir.example.org/f"])
def test_origin_other_than_the_servers_is_refused(url):
    with pytest.raises(ndjson.OffOrigin):
        ndjson.check_origin(url, ["https://fhir.example.org/r4"])


def test_same_origin_any_path_is_allowed():
    ndjson.check_origin("https://FHIR.example.org:443/bulk/files/1.ndjson?sig=1", ["https://fhir.example.org/r4"])
