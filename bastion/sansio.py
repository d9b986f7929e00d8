"""Write a protocol once, run it sync or async: flows are generators of I/O steps.

A flow (as httpx's own auth flows) yields an `httpx.Request` and receives its `httpx.Response`, or
yields a `Sleep` and receives None. It never touches a socket or a clock of its own, so the client
and resource libraries keep one implementation of every rule, and tests can feed a flow any answer
a provider could give. `drive_sync` and `drive_async` are the only two drivers; a transport failure
is thrown into the flow as the exception `failure(exc)` returns, so a flow may handle it (the
device-flow poll slows down on a timeout, RFC 8628 §3.5) or let it propagate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

__all__ = ["TIMEOUT", "Flow", "Sleep", "drive_async", "drive_sync", "request"]

T = TypeVar("T")

TIMEOUT = httpx.Timeout(10.0)


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait this long before the next step (polling intervals)."""

    seconds: float


Step = httpx.Request | Sleep
Flow = Generator[Step, httpx.Response | None, T]
Failure = Callable[[httpx.HTTPError], Exception]


def request(method: str, url: str, timeout: httpx.Timeout = TIMEOUT, **kwargs: Any) -> httpx.Request:
    """An `httpx.Request` whose timeout travels with it, so that it holds on any client a driver is given."""
    return httpx.Request(method, url, extensions={"timeout": timeout.as_dict()}, **kwargs)


def drive_sync(flow: Flow[T], http: httpx.Client | None, failure: Failure,
               sleep: Callable[[float], object] = time.sleep) -> T:
    """Run `flow` on `http` (or on a client created only if the flow does any I/O)."""
    owned: httpx.Client | None = None
    try:
        step = next(flow)
        while True:
            if isinstance(step, Sleep):
                sleep(step.seconds)
                step = flow.send(None)
                continue
            client = http or owned or httpx.Client(timeout=TIMEOUT)
            owned = None if client is http else client
            try:
                response = client.send(step)
                response.read()
            except httpx.HTTPError as exc:
                step = flow.throw(failure(exc))
            else:
                step = flow.send(response)
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        flow.close()
        if owned is not None:
            owned.close()


async def drive_async(flow: Flow[T], http: httpx.AsyncClient | None, failure: Failure,
                      sleep: Callable[[float], Any] = asyncio.sleep) -> T:
    """`drive_sync` for asyncio, on `httpx.AsyncClient`."""
    owned: httpx.AsyncClient | None = None
    try:
        step = next(flow)
        while True:
            if isinstance(step, Sleep):
                await sleep(step.seconds)
                step = flow.send(None)
                continue
            client = http or owned or httpx.AsyncClient(timeout=TIMEOUT)
            owned = None if client is http else client
            try:
                response = await client.send(step)
                await response.aread()
            except httpx.HTTPError as exc:
                step = flow.throw(failure(exc))
            else:
                step = flow.send(response)
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        flow.close()
        if owned is not None:
            await owned.aclose()
