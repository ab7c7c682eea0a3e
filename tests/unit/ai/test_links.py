"""Signed links to AI outputs: one output of one job of one tenant, until they expire."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from bloop.ai.jobs.links import OutputLinks, link_path
from bloop.platform.kit.auth import Forbidden


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def parts(link: str) -> tuple[str, int, str]:
    split = urlsplit(link)
    query = parse_qs(split.query)
    return split.path, int(query["expires"][0]), query["signature"][0]


def test_a_link_opens_its_output_only_and_until_it_expires() -> None:
    clock = Clock()
    links = OutputLinks(b"k" * 32, ttl_s=600, clock=clock)
    path, expires, signature = parts(links.signed("acme", "job1", "lesson video.mp4"))
    assert path == link_path("acme", "job1", "lesson video.mp4")
    assert path.endswith("/lesson%20video.mp4")
    assert expires == 1_000_575  # on an eighth of the 600 s
    links.check("acme", "job1", "lesson video.mp4", expires, signature)
    for tenant, job, name, when in (("beta", "job1", "lesson video.mp4", expires),
                                    ("acme", "job2", "lesson video.mp4", expires),
                                    ("acme", "job1", "narration.wav", expires),
                                    ("acme", "job1", "lesson video.mp4", expires + 60)):
        with pytest.raises(Forbidden, match="signature") as refused:
            links.check(tenant, job, name, when, signature)
        assert refused.value.code == "bad_signature"
    clock.now += 600
    with pytest.raises(Forbidden, match="expired"):
        links.check("acme", "job1", "lesson video.mp4", expires, signature)


def test_only_processes_sharing_the_secret_accept_each_other_s_links() -> None:
    made = OutputLinks(b"s" * 32, ttl_s=600).signed("acme", "job1", "a.mp4")
    _, expires, signature = parts(made)
    OutputLinks(b"s" * 32, ttl_s=600).check("acme", "job1", "a.mp4", expires, signature)
    with pytest.raises(Forbidden):
        OutputLinks(None, ttl_s=600).check("acme", "job1", "a.mp4", expires, signature)


def test_links_asked_for_within_an_eighth_of_their_life_are_one_url() -> None:
    clock = Clock()
    links = OutputLinks(b"k" * 32, ttl_s=800, clock=clock)
    first = links.signed("acme", "job1", "a.mp4")
    clock.now += 99
    assert links.signed("acme", "job1", "a.mp4") == first  # a browser's cached copy serves it
    clock.now += 1
    assert links.signed("acme", "job1", "a.mp4") != first
    for _ in range(1_000):
        clock.now += 0.37
        _, expires, _ = parts(links.signed("acme", "job1", "a.mp4"))
        assert 700 <= expires - clock.now <= 800
