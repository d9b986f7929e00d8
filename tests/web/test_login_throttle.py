"""Failed logins are throttled per username and per address, without revealing which usernames exist."""

from __future__ import annotations

from datetime import timedelta

import httpx

from bastion.core.provider import Provider
from tests.web.flow import Flow

TOO_MANY = "Too many failed attempts"


async def login_page(flow: Flow) -> httpx.Response:
    return await flow.follow(await flow.authorize(flow.request(prompt="login")))


async def test_five_failures_lock_the_username_even_for_the_right_password(flow: Flow, provider: Provider) -> None:
    page = await login_page(flow)
    for _ in range(5):
        response = await flow.login(page, password="wrong")
        assert response.status_code == 401 and "Incorrect username or password." in response.text
    locked = await flow.login(page)  # the right password, too late
    assert locked.status_code == 429 and TOO_MANY in locked.text and "location" not in locked.headers
    # An unknown username behaves the same: throttling does not reveal which accounts exist.
    for _ in range(5):
        await flow.login(page, username="nobody", password="wrong")
    assert TOO_MANY in (await flow.login(page, username="nobody", password="x")).text
    # After the window, the right password works and clears the count.
    real_now = provider.clock
    provider.clock = lambda: real_now() + timedelta(seconds=301)
    page = await login_page(flow)
    assert (await flow.login(page)).status_code == 303


async def test_one_address_cannot_spray_many_usernames(flow: Flow, provider: Provider) -> None:
    provider.settings.login_max_failures_per_address = 3
    page = await login_page(flow)
    for name in ("u1", "u2", "u3"):
        assert (await flow.login(page, username=name, password="x")).status_code == 401
    assert (await flow.login(page)).status_code == 429


async def test_a_success_resets_the_username_count(flow: Flow) -> None:
    page = await login_page(flow)
    for _ in range(4):
        await flow.login(page, password="wrong")
    assert (await flow.login(page)).status_code == 303
    page = await login_page(flow)
    for _ in range(4):
        assert (await flow.login(page, password="wrong")).status_code == 401


async def test_parallel_guesses_cannot_slip_past_the_limit(flow: Flow, provider: Provider) -> None:
    import asyncio

    provider.settings.login_max_failures_per_address = 1000  # the username limit alone is under test
    page = await login_page(flow)
    responses = await asyncio.gather(*(flow.login(page, password=f"guess-{i}") for i in range(30)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(401) == 5 and statuses.count(429) == 25  # only five passwords were ever checked
