"""The framework-free parts: the in-memory transaction store and the `next` check."""

from __future__ import annotations

import pytest

from bastion.integrations import MemoryStore
from bastion.integrations.flask import safe_next


def test_memory_store_expires_entries() -> None:
    now = [100.0]
    store = MemoryStore(clock=lambda: now[0])
    store.set("a", {"x": 1}, ttl=10)
    assert store.get("a") == {"x": 1}
    now[0] += 10
    assert store.get("a") is None
    assert len(store) == 0


def test_memory_store_hands_out_copies() -> None:
    store = MemoryStore()
    value = {"nested": {"x": 1}}
    store.set("a", value, ttl=60)
    value["nested"]["x"] = 2
    got = store.get("a")
    assert got == {"nested": {"x": 1}}
    assert got is not None
    got["nested"]["x"] = 3
    assert store.get("a") == {"nested": {"x": 1}}
    store.delete("a")
    store.delete("a")
    assert store.get("a") is None


def test_memory_store_is_bounded_expired_first_then_oldest() -> None:
    now = [0.0]
    store = MemoryStore(max_entries=3, clock=lambda: now[0])
    store.set("old", {}, ttl=1000)
    store.set("short", {}, ttl=1)
    store.set("b", {}, ttl=1000)
    now[0] = 5
    store.set("c", {}, ttl=1000)  # "short" expired: it goes, the others stay
    assert [k for k in ("old", "short", "b", "c") if store.get(k) is not None] == ["old", "b", "c"]
    store.set("d", {}, ttl=1000)  # nothing expired: the oldest goes
    assert [k for k in ("old", "b", "c", "d") if store.get(k) is not None] == ["b", "c", "d"]
    assert len(store) == 3


@pytest.mark.parametrize("value", [
    None, "", "profile", "//evil.example", "///evil.example", "/\\evil.example", "/x\\y", "\\\\evil",
    "https://evil.example/", "javascript:alert(1)", "/\t/evil.example", "/\n/evil", "/ /evil", "/a\x7fb",
    "http:/evil.example", " /profile",
])
def test_safe_next_refuses_anything_but_a_local_path(value: str | None) -> None:
    assert safe_next(value, "/home") == "/home"


@pytest.mark.parametrize("value", ["/", "/profile", "/profile?tab=1&x=%2F%2Fevil", "/a/b#frag", "/caf%C3%A9"])
def test_safe_next_keeps_local_paths(value: str) -> None:
    assert safe_next(value) == value
