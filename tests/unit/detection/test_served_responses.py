"""The feedback book's recent-responses map: expiry, bound, scores, and no tracked object per entry."""

from __future__ import annotations

import gc

import pytest

from litellm_canary.core.decision import Side
from litellm_canary.detection.served_responses import Served, ServedResponses
from tests.support.helpers import FakeClock


def test_a_remembered_response_is_found_until_its_ttl_ends() -> None:
    clock = FakeClock()
    book = ServedResponses(10, ttl_s=60, clock=clock)
    book.remember("r1", "chat", Side.CANARY, "chat-canary")
    clock.now += 59.9
    assert book.get("r1") == Served("chat", Side.CANARY, "chat-canary")
    clock.now += 0.1
    assert book.get("r1") is None
    assert len(book) == 0


def test_the_oldest_response_goes_first_when_the_map_is_full() -> None:
    clock = FakeClock()
    book = ServedResponses(3, ttl_s=60, clock=clock)
    for number in range(4):
        book.remember(f"r{number}", "chat", Side.STABLE, "chat-stable")
        clock.now += 1
    assert book.get("r0") is None
    assert [book.get(f"r{n}") is not None for n in (1, 2, 3)] == [True, True, True]
    assert len(book) == 3


def test_a_re_served_id_gets_a_fresh_ttl_and_the_new_server() -> None:
    clock = FakeClock()
    book = ServedResponses(10, ttl_s=60, clock=clock)
    book.remember("r1", "chat", Side.CANARY, "chat-canary")
    book.remember("r2", "chat", Side.STABLE, "chat-stable")
    clock.now += 30
    book.remember("r1", "chat", Side.STABLE, "chat-stable")
    clock.now += 40  # r2 expired (70 s), r1 was renewed 40 s ago
    assert book.get("r2") is None
    assert book.get("r1") == Served("chat", Side.STABLE, "chat-stable")


def test_a_score_is_kept_with_its_response_and_does_not_extend_it() -> None:
    clock = FakeClock()
    book = ServedResponses(10, ttl_s=60, clock=clock)
    book.remember("r1", "chat", Side.CANARY, "chat-canary")
    clock.now += 50
    book.set_score("r1", 0.25)
    assert book.get("r1") == Served("chat", Side.CANARY, "chat-canary", 0.25)
    clock.now += 10
    assert book.get("r1") is None


def test_scoring_an_unknown_response_raises_key_error() -> None:
    with pytest.raises(KeyError):
        ServedResponses(10, ttl_s=60).set_score("nope", 0.5)


@pytest.mark.parametrize(("max_responses", "ttl_s"), [(0, 60.0), (10, 0.0)])
def test_bad_bounds_are_refused(max_responses: int, ttl_s: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        ServedResponses(max_responses, ttl_s)


def test_a_full_map_holds_no_garbage_collected_object_per_entry() -> None:
    """The reason this map exists: a TTLCache of records kept two tracked objects per response."""
    book = ServedResponses(20_000, ttl_s=3600)
    gc.collect()
    before = len(gc.get_objects())
    for number in range(20_000):
        book.remember(f"response-{number}", "chat", Side(("stable", "canary")[number % 2]), "d")
    book.set_score("response-7", 0.5)
    gc.collect()
    assert len(book) == 20_000
    assert len(gc.get_objects()) - before < 100
