from __future__ import annotations

import pytest

from bloop.platform.kit.urls import http_url_problem


@pytest.mark.parametrize("address", [
    "https://accounts.google.com", "http://127.0.0.1:11434/v1", "http://[::1]:8000/v1",
    "https://ümlaut.example/v1", "https://login.microsoftonline.com/{tenantid}/v2.0",
    "https://example.com/a%20b?q=1#part"])
def test_a_fetchable_address_passes(address: str) -> None:
    assert http_url_problem(address) is None


@pytest.mark.parametrize(("address", "problem"), [
    ("http://127.0\x1f.0.1/v1", "'\\x1f'"),
    ("http://host/v1\x7f", "'\\x7f'"),
    ("http://host/a b", "' '"),
    ("http://host\u200b.example", "'\\u200b'"),
    ("ftp://host/file", "http:// or https://"),
    ("host/v1", "http:// or https://"),
    ("http://", "no host"),
    ("http://host:70000/", "port 70000"),
    ("http://[::1/", "Invalid"),
    # `xn--` names that do not decode: httpx raised idna's errors, a 500 where unchecked
    ("https://xn--.com", "names an invalid host"),
    ("https://xn--a.com/v1", "names an invalid host"),
    ("https://xn--ls8h.la", "names an invalid host"),
])
def test_an_address_httpx_would_refuse_to_fetch_is_named(address: str, problem: str) -> None:
    found = http_url_problem(address)
    assert found is not None
    assert problem in found
