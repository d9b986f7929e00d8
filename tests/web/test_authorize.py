"""Every rule of the authorization endpoint, one test each."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from bastion.core import jose
from bastion.core.provider import Provider
from tests.conftest import ISSUER
from tests.web.flow import APP_REDIRECT, Flow, query


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 303, (response.status_code, response.text[:300])
    location = response.headers["location"]
    assert location.startswith(APP_REDIRECT + "?"), location
    return query(location)


def assert_error_page(response: httpx.Response) -> None:
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "not sent back" in response.text


async def test_unknown_client_renders_a_page(flow: Flow) -> None:
    assert_error_page(await flow.authorize(flow.request(client_id="nobody")))


async def test_unregistered_redirect_uri_renders_a_page_not_a_redirect(flow: Flow) -> None:
    assert_error_page(await flow.authorize(flow.request(redirect_uri="https://evil.example/cb")))
    # Exact string matching: no prefix, no added query, no trailing slash, no case folding.
    for uri in (APP_REDIRECT + "/", APP_REDIRECT + "?x=1", "https://APP.example/cb", "https://app.example/cb2"):
        assert_error_page(await flow.authorize(flow.request(redirect_uri=uri)))


async def test_missing_redirect_uri_renders_a_page(flow: Flow) -> None:
    assert_error_page(await flow.authorize(flow.request(redirect_uri=None)))


async def test_native_loopback_redirect_uri_may_use_any_port(flow: Flow) -> None:
    req = flow.request(client_id="native", redirect_uri="http://127.0.0.1:51234/callback")
    callback = await flow.run(req)
    response = await flow.exchange(callback["code"], req.verifier, client_id="native", secret=None,
                                   redirect_uri="http://127.0.0.1:51234/callback")
    assert response.status_code == 200, response.text
    assert_error_page(await flow.authorize(flow.request(client_id="native",
                                                        redirect_uri="http://127.0.0.1:51234/other")))
    # Only the port may vary: a browser reads `\\` as `/`, so these would send the code to evil.example.
    for uri in ("http://localhost.evil:51234/callback", "http://evil.example\\@127.0.0.1/callback",
                "http://evil@127.0.0.1:5000/callback", "http://127.0.0.1:/callback", "http://127.0.0.1:70000/callback"):
        assert_error_page(await flow.authorize(flow.request(client_id="native", redirect_uri=uri,
                                                            response_mode="form_post")))


@pytest.mark.parametrize(("overrides", "error"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"response_type": None}, "invalid_request"),
    ({"code_challenge": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"code_challenge": "too-short"}, "invalid_request"),
    ({"scope": "unknown other"}, "invalid_scope"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
    ({"response_mode": "fragment"}, "invalid_request"),
    ({"claims": "{not json"}, "invalid_request"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"request_uri": "https://app.example/r"}, "request_uri_not_supported"),
    ({"id_token_hint": "not.a.token"}, "invalid_request"),
])
async def test_invalid_requests_redirect_with_error_state_and_iss(flow: Flow, overrides: dict, error: str) -> None:
    req = flow.request(**overrides)
    params = redirect_params(await flow.authorize(req))
    assert params["error"] == error
    assert params["state"] == req.params["state"]
    assert params["iss"] == ISSUER
    assert "code" not in params


async def test_repeated_parameter_is_rejected(flow: Flow, http: httpx.AsyncClient) -> None:
    req = flow.request()
    query_string = httpx.QueryParams(req.params).add("scope", "openid").add("state", "again")
    response = await http.get("/authorize", params=query_string)
    assert response.status_code == 400 and "location" not in response.headers


async def test_unknown_and_optional_parameters_are_accepted(flow: Flow) -> None:
    req = flow.request(display="popup", ui_locales="fr-CA fr en", claims_locales="de", acr_values="urn:x:1",
                       extra="foobar", scope="openid bogus email", login_hint="alice")
    response = await flow.authorize(req)
    page = await flow.follow(response)
    assert 'value="alice"' in page.text  # login_hint prefills the username
    assert "bogus" not in page.text


async def test_prompt_none_without_session_is_login_required(flow: Flow) -> None:
    req = flow.request(prompt="none")
    params = redirect_params(await flow.authorize(req))
    assert params == {"error": "login_required", "error_description": params["error_description"],
                      "state": req.params["state"], "iss": ISSUER}


async def test_prompt_none_without_consent_is_consent_required(flow: Flow) -> None:
    await flow.tokens(scope="openid")
    params = redirect_params(await flow.authorize(flow.request(prompt="none", scope="openid email")))
    assert params["error"] == "consent_required"


async def test_prompt_none_with_session_and_consent_is_silent(flow: Flow, provider: Provider) -> None:
    _, first = await flow.tokens()
    req = flow.request(prompt="none", id_token_hint=first["id_token"])
    params = redirect_params(await flow.authorize(req))
    assert "code" in params and params["state"] == req.params["state"]
    body = (await flow.exchange(params["code"], req.verifier)).json()
    keys = provider.keys.verification_keys
    one, two = (jose.verify(t, keys, ["RS256"]).claims for t in (first["id_token"], body["id_token"]))
    assert one["sub"] == two["sub"] and one["auth_time"] == two["auth_time"]


async def test_id_token_hint_for_another_user_with_prompt_none_is_login_required(
        flow: Flow, provider: Provider) -> None:
    await flow.tokens()
    key = provider.keys.signing_key("RS256")
    hint = jose.sign({"iss": ISSUER, "sub": "someone-else", "aud": "app", "exp": 1, "iat": 0},
                     key.private_key, "RS256", key.kid)
    params = redirect_params(await flow.authorize(flow.request(prompt="none", id_token_hint=hint)))
    assert params["error"] == "login_required"


async def test_prompt_login_forces_reauthentication(flow: Flow, provider: Provider) -> None:
    _, first = await flow.tokens()
    real_now = provider.clock
    provider.clock = lambda: real_now() + timedelta(seconds=5)
    req = flow.request(prompt="login")
    callback = await flow.run(req, expect_login=True, expect_consent=False)
    body = (await flow.exchange(callback["code"], req.verifier)).json()
    keys = provider.keys.verification_keys
    before, after = (jose.verify(t, keys, ["RS256"]).claims for t in (first["id_token"], body["id_token"]))
    assert after["auth_time"] >= before["auth_time"] + 5


async def test_max_age_forces_login_when_the_session_is_older(flow: Flow, provider: Provider) -> None:
    await flow.tokens()
    real_now = provider.clock
    provider.clock = lambda: real_now() + timedelta(seconds=30)
    # Young enough: silent.
    assert "code" in redirect_params(await flow.authorize(flow.request(max_age="10000")))
    # Too old: a login page, then auth_time in the ID token.
    req = flow.request(max_age="10")
    callback = await flow.run(req, expect_login=True, expect_consent=False)
    body = (await flow.exchange(callback["code"], req.verifier)).json()
    claims = jose.verify(body["id_token"], provider.keys.verification_keys, ["RS256"]).claims
    assert claims["iat"] - claims["auth_time"] <= 10


async def test_deny_returns_access_denied(flow: Flow) -> None:
    req = flow.request()
    page = await flow.follow(await flow.authorize(req))
    page = await flow.follow(await flow.login(page))
    response = await flow.consent(page, decision="deny")
    params = redirect_params(response)
    assert params["error"] == "access_denied" and params["state"] == req.params["state"]
    assert params["iss"] == ISSUER


async def test_wrong_password_and_unknown_user_get_the_same_generic_error(flow: Flow) -> None:
    page = await flow.follow(await flow.authorize(flow.request()))
    wrong_password = await flow.login(page, password="nope")
    unknown_user = await flow.login(page, username="mallory", password="nope")
    for response in (wrong_password, unknown_user):
        assert "location" not in response.headers
        assert "Incorrect username or password." in response.text
    assert wrong_password.status_code == unknown_user.status_code


async def test_login_without_csrf_token_is_refused(flow: Flow, http: httpx.AsyncClient) -> None:
    response = await flow.authorize(flow.request())
    location = response.headers["location"]
    await http.get(location)
    forged = await http.post(location + "/login", data={"username": "alice", "password": "correct horse battery"})
    assert forged.status_code == 400 and "location" not in forged.headers


async def test_interaction_is_bound_to_the_browser_that_started_it(flow: Flow, provider: Provider) -> None:
    response = await flow.authorize(flow.request())
    location = response.headers["location"]
    other = httpx.AsyncClient(transport=flow.http._transport, base_url=ISSUER)
    async with other:
        stolen = await other.get(location)
    assert stolen.status_code == 400 and 'name="password"' not in stolen.text


async def test_pages_have_security_headers_and_cookies_are_locked_down(flow: Flow) -> None:
    response = await flow.authorize(flow.request())
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    page = await flow.follow(response)
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "access-control-allow-origin" not in response.headers
    login = await flow.login(page)
    session_cookie = login.headers["set-cookie"].lower()
    assert "bastion_session=" in session_cookie and "httponly" in session_cookie and "secure" in session_cookie


async def test_no_third_party_resources_on_pages(flow: Flow) -> None:
    page = await flow.follow(await flow.authorize(flow.request()))
    assert "http://" not in page.text and "https://" not in page.text.replace(ISSUER, "")
