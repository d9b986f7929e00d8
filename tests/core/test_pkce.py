"""PKCE (RFC 7636), S256 only."""

from __future__ import annotations

import hashlib
import string

import pytest

from bastion.core.errors import InvalidGrant, InvalidRequest
from bastion.core.pkce import check_code_challenge, s256, verify_pkce
from bastion.core.secrets import b64url

# RFC 7636 Appendix B (the challenge is BASE64URL(SHA256(verifier)), checked independently below).
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
# A well-formed challenge that is NOT the RFC's (it appears in README.md's "have a look" URL).
OTHER_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeUdtKTKV9KPlQFbVi-M"
UNRESERVED = string.ascii_letters + string.digits + "-._~"


def test_rfc7636_appendix_b() -> None:
    digest = bytes([19, 211, 30, 150, 26, 26, 216, 236, 47, 22, 177, 12, 76, 152, 46,
                    8, 118, 168, 120, 173, 109, 241, 68, 86, 110, 225, 137, 74, 203, 112, 249, 195])
    assert hashlib.sha256(RFC_VERIFIER.encode("ascii")).digest() == digest
    assert s256(RFC_VERIFIER) == RFC_CHALLENGE
    assert check_code_challenge(RFC_CHALLENGE, "S256") == RFC_CHALLENGE
    verify_pkce(RFC_VERIFIER, RFC_CHALLENGE)  # no exception


def test_s256_is_base64url_sha256_without_padding() -> None:
    verifier = UNRESERVED[:64]
    assert s256(verifier) == b64url(hashlib.sha256(verifier.encode()).digest())
    assert len(s256(verifier)) == 43 and "=" not in s256(verifier)


@pytest.mark.parametrize("verifier", ["a" * 43, "~" * 128, UNRESERVED, (UNRESERVED * 2)[:128], "-._~" * 11])
def test_valid_verifiers_accepted(verifier: str) -> None:
    assert 43 <= len(verifier) <= 128
    verify_pkce(verifier, check_code_challenge(s256(verifier), "S256"))


# --- verify_pkce (token endpoint): invalid_grant ---------------------------------------------


@pytest.mark.parametrize(
    "verifier",
    [
        RFC_VERIFIER[:-1] + "l",  # one character changed
        RFC_VERIFIER[::-1],
        "a" * 43,
        RFC_CHALLENGE,  # the challenge sent back as verifier
    ],
)
def test_wrong_verifier(verifier: str) -> None:
    with pytest.raises(InvalidGrant) as info:
        verify_pkce(verifier, RFC_CHALLENGE)
    assert info.value.error == "invalid_grant"


def test_right_verifier_for_another_challenge() -> None:
    with pytest.raises(InvalidGrant, match="PKCE verification failed"):
        verify_pkce(RFC_VERIFIER, check_code_challenge(OTHER_CHALLENGE, "S256"))


@pytest.mark.parametrize("verifier", [None, ""])
def test_missing_verifier(verifier: str | None) -> None:
    with pytest.raises(InvalidGrant):
        verify_pkce(verifier, RFC_CHALLENGE)


def test_verifier_too_short() -> None:
    verifier = RFC_VERIFIER[:42]
    assert len(verifier) == 42
    # Refused even though the challenge matches it: RFC 7636 §4.1 requires at least 43 characters.
    with pytest.raises(InvalidGrant, match="malformed"):
        verify_pkce(verifier, s256(verifier))


def test_verifier_too_long() -> None:
    verifier = (UNRESERVED * 3)[:129]
    assert len(verifier) == 129
    with pytest.raises(InvalidGrant, match="malformed"):
        verify_pkce(verifier, s256(verifier))


@pytest.mark.parametrize(
    "bad",
    [" ", "+", "/", "=", "%", "!", "*", "\t", "é", "\u0661", "\x00", "\udcff", "🙂"],
)
def test_verifier_with_invalid_characters(bad: str) -> None:
    verifier = RFC_VERIFIER[:20] + bad + RFC_VERIFIER[21:]
    challenge = b64url(hashlib.sha256(verifier.encode("utf-8", "surrogatepass")).digest())
    with pytest.raises(InvalidGrant, match="malformed"):
        verify_pkce(verifier, challenge)


def test_verifier_with_trailing_newline() -> None:
    verifier = RFC_VERIFIER + "\n"
    with pytest.raises(InvalidGrant):
        verify_pkce(verifier, s256(verifier))


def test_challenge_compared_exactly() -> None:
    for challenge in [RFC_CHALLENGE.lower(), RFC_CHALLENGE + "=", RFC_CHALLENGE[:-1], ""]:
        with pytest.raises(InvalidGrant):
            verify_pkce(RFC_VERIFIER, challenge)


# --- check_code_challenge (authorization endpoint): invalid_request --------------------------


@pytest.mark.parametrize("challenge", [None, ""])
def test_challenge_missing(challenge: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_code_challenge(challenge, "S256")
    assert info.value.error == "invalid_request"


@pytest.mark.parametrize("method", [None, "", "plain", "PLAIN", "s256", "S256 ", "SHA256", "S512"])
def test_method_missing_or_not_s256(method: str | None) -> None:
    with pytest.raises(InvalidRequest, match="S256"):
        check_code_challenge(RFC_CHALLENGE, method)


def test_plain_refused_even_when_challenge_looks_like_a_verifier() -> None:
    with pytest.raises(InvalidRequest):
        check_code_challenge(RFC_VERIFIER, "plain")


@pytest.mark.parametrize(
    "challenge",
    [
        RFC_CHALLENGE[:42],  # too short
        RFC_CHALLENGE + "A",  # too long
        RFC_CHALLENGE + "=",  # padded
        RFC_CHALLENGE[:-1] + "=",
        RFC_CHALLENGE[:20] + "+" + RFC_CHALLENGE[21:],  # standard alphabet
        RFC_CHALLENGE[:20] + "/" + RFC_CHALLENGE[21:],
        RFC_CHALLENGE[:20] + "." + RFC_CHALLENGE[21:],  # allowed in a verifier, not in base64url
        RFC_CHALLENGE[:20] + "~" + RFC_CHALLENGE[21:],
        RFC_CHALLENGE[:20] + " " + RFC_CHALLENGE[21:],
        RFC_CHALLENGE[:20] + "é" + RFC_CHALLENGE[21:],
        RFC_VERIFIER + RFC_VERIFIER,  # a plain verifier
        hashlib.sha256(RFC_VERIFIER.encode()).hexdigest(),  # hex, not base64url
        "a" * 128,
    ],
)
def test_malformed_challenge(challenge: str) -> None:
    with pytest.raises(InvalidRequest, match="not a valid S256 challenge"):
        check_code_challenge(challenge, "S256")


def test_challenge_with_trailing_newline() -> None:
    with pytest.raises(InvalidRequest):
        check_code_challenge(RFC_CHALLENGE + "\n", "S256")
