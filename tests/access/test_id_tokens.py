"""ID tokens are verified against their issuer's published keys, by one set of rules.

The core (``fluxgate.access.id_tokens``) with the local runtime's adapters (``cryptography``
for signatures, httpx for the JWKS) against a real issuer double on 127.0.0.1
(``tests/support/oidc_issuer.py``). Time is a hand-moved clock, shared by the verifier and
the key cache, so that expiry, freshness and the refetch interval are exact.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from fluxgate.access.id_tokens import (
    CLOCK_SKEW_SECONDS,
    FetchedJwks,
    IdTokenVerifier,
    JwksCache,
    JwksUnavailable,
    TrustedIssuer,
    VerifiedToken,
    cache_max_age,
    check_issuer_url,
    subject_hash,
)
from fluxgate.errors import ApiError
from fluxgate.local.id_token_crypto import CryptographySignatures
from fluxgate.local.jwks_http import HttpxJwksFetcher

from ..support.clock import Clock
from ..support.oidc_issuer import OidcIssuer, b64url, encode

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_issuer(issuer: OidcIssuer) -> Iterator[None]:
    """Each test starts with the issuer up, its two keys published, no fetch counted."""
    yield
    issuer.come_back()
    for kid in list(issuer.keys):
        if kid not in ("rsa-1", "ec-1"):
            del issuer.keys[kid]
    issuer.published[:] = ["rsa-1", "ec-1"]
    issuer.extra_jwks.clear()
    issuer.max_age = 600
    issuer.jwks_fetches = 0


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Gateway:
    """What the exchange route will hold: a verifier over a key cache, both on one clock."""

    def __init__(self, issuer: OidcIssuer, clock: Clock, **trusted: Any) -> None:
        self.cache = JwksCache(HttpxJwksFetcher(allow_loopback=True), clock, allow_loopback=True)
        self.verifier = IdTokenVerifier(self.cache, CryptographySignatures(), clock)
        self.trusted = TrustedIssuer(
            issuer=issuer.url, audiences=(issuer.audience,), jwks_url=issuer.jwks_url, **trusted
        )

    async def verify(self, token: str, what: str = "id_token") -> VerifiedToken:
        return await self.verifier.verify(token, [self.trusted], what=what)

    async def refusal(self, token: str, what: str = "id_token") -> ApiError:
        with pytest.raises(ApiError) as refused:
            await self.verify(token, what)
        return refused.value


@pytest.fixture
def gateway(issuer: OidcIssuer, clock: Clock) -> Gateway:
    return Gateway(issuer, clock)


# -- accepted ----------------------------------------------------------------------------------


async def test_an_rs256_token_from_a_trusted_issuer_is_accepted(issuer, clock, gateway):
    verified = await gateway.verify(issuer.sign(issuer.claims(clock.now), key="rsa-1"))
    assert verified.subject == "user-1234"
    assert verified.issuer == gateway.trusted
    assert (verified.algorithm, verified.key_id) == ("RS256", "rsa-1")
    assert verified.claims["aud"] == issuer.audience


async def test_an_es256_token_from_a_trusted_issuer_is_accepted(issuer, clock, gateway):
    verified = await gateway.verify(issuer.sign(issuer.claims(clock.now), key="ec-1"))
    assert (verified.algorithm, verified.key_id, verified.subject) == ("ES256", "ec-1", "user-1234")


async def test_aud_may_be_a_list_naming_the_audience_among_others(issuer, clock, gateway):
    claims = issuer.claims(clock.now, aud=["another-app", issuer.audience])
    assert (await gateway.verify(issuer.sign(claims))).subject == "user-1234"


async def test_another_spelling_of_the_issuer_is_accepted_when_configured(issuer, clock):
    gateway = Gateway(issuer, clock, also_issuer=("accounts.example.test",))
    token = issuer.sign(issuer.claims(clock.now, iss="accounts.example.test"))
    assert (await gateway.verify(token)).issuer.issuer == issuer.url


async def test_a_token_without_kid_uses_the_one_key_of_its_type(issuer, clock, gateway):
    token = issuer.sign(issuer.claims(clock.now), key="ec-1", header_overrides={"kid": None})
    assert (await gateway.verify(token)).key_id is None


async def test_the_key_set_is_fetched_once_while_fresh(issuer, clock, gateway):
    for _ in range(3):
        await gateway.verify(issuer.sign(issuer.claims(clock.now)))
        clock.advance(100)
    assert issuer.jwks_fetches == 1


async def test_concurrent_requests_share_one_fetch(issuer, clock, gateway):
    tokens = [issuer.sign(issuer.claims(clock.now, sub=f"user-{n}")) for n in range(8)]
    verified = await asyncio.gather(*(gateway.verify(token) for token in tokens))
    assert [v.subject for v in verified] == [f"user-{n}" for n in range(8)]
    assert issuer.jwks_fetches == 1


# -- forgeries ---------------------------------------------------------------------------------


async def test_a_tampered_signature_is_refused(issuer, clock, gateway):
    for key in ("rsa-1", "ec-1"):
        token = issuer.tampered(issuer.sign(issuer.claims(clock.now), key=key))
        assert (await gateway.refusal(token)).code == "id_token_signature_invalid"


async def test_a_signature_by_another_key_under_a_published_kid_is_refused(issuer, clock, gateway):
    issuer.add_key("RSA", "impostor", publish=False)
    token = issuer.sign(issuer.claims(clock.now), key="impostor", kid="rsa-1")
    assert (await gateway.refusal(token)).code == "id_token_signature_invalid"


async def test_changed_claims_under_a_valid_signature_are_refused(issuer, clock, gateway):
    header, _, signature = issuer.sign(issuer.claims(clock.now)).split(".")
    payload = encode({}, issuer.claims(clock.now, sub="admin")).split(".")[1]
    token = f"{header}.{payload}.{signature}"
    assert (await gateway.refusal(token)).code == "id_token_signature_invalid"


async def test_alg_none_is_refused_before_any_key_is_fetched(issuer, clock, gateway):
    refused = await gateway.refusal(issuer.unsigned(issuer.claims(clock.now)))
    assert refused.code == "id_token_algorithm_not_allowed"
    assert issuer.jwks_fetches == 0


async def test_hs256_keyed_with_the_public_key_is_refused(issuer, clock, gateway):
    refused = await gateway.refusal(issuer.hs256_with_public_key(issuer.claims(clock.now)))
    assert refused.code == "id_token_algorithm_not_allowed"
    assert issuer.jwks_fetches == 0


async def test_an_algorithm_the_issuer_is_not_allowed_is_refused(issuer, clock):
    gateway = Gateway(issuer, clock, algorithms=("RS256",))
    refused = await gateway.refusal(issuer.sign(issuer.claims(clock.now), key="ec-1"))
    assert refused.code == "id_token_algorithm_not_allowed"


async def test_an_algorithm_that_does_not_fit_the_named_key_is_refused(issuer, clock, gateway):
    # ES256 claimed, the RSA key named: the algorithm is never taken from the key, nor the key
    # bent to the algorithm.
    token = issuer.sign(issuer.claims(clock.now), key="ec-1", kid="rsa-1")
    assert (await gateway.refusal(token)).code == "id_token_algorithm_not_allowed"


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("", "empty"),
        ("not-a-jwt", "one part"),
        ("a.b", "two parts"),
        ("a.b.c.d", "four parts"),
        ("!!!.e30.c2ln", "not base64url"),
        (b64url(b"[1]") + ".e30.c2ln", "a header that is no object"),
        (b64url(b'{"alg":"RS256","alg":"RS256"}') + ".e30.c2ln", "duplicate names"),
        ("x" * 17_000, "over 16 KiB"),
    ],
)
async def test_a_token_that_is_not_a_jwt_is_malformed(gateway, token, why):
    assert (await gateway.refusal(token)).code == "invalid_id_token", why


@pytest.mark.parametrize(
    "header",
    [{"crit": ["exp"]}, {"typ": "at+jwt"}, {"kid": 7}],
    ids=["crit", "typ", "kid-not-a-string"],
)
async def test_header_parameters_that_are_not_understood_are_refused(
    issuer, clock, gateway, header
):
    token = issuer.sign(issuer.claims(clock.now), header_overrides=header)
    assert (await gateway.refusal(token)).code == "invalid_id_token"


# -- issuers, keys and audiences ---------------------------------------------------------------


async def test_a_token_from_an_issuer_not_trusted_is_refused(issuer, clock, gateway):
    token = issuer.sign(issuer.claims(clock.now, iss="https://evil.example.com"))
    assert (await gateway.refusal(token)).code == "untrusted_issuer"
    assert issuer.jwks_fetches == 0


async def test_a_token_for_another_audience_is_refused(issuer, clock, gateway):
    for aud in ("another-app", ["another-app", "a-third-app"]):
        token = issuer.sign(issuer.claims(clock.now, aud=aud))
        assert (await gateway.refusal(token)).code == "id_token_audience_mismatch"


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": None},
        {"sub": ""},
        {"sub": 42},
        {"aud": None},
        {"aud": [1]},
        {"exp": None},
        {"exp": "4000000000"},
        {"exp": True},
        {"iat": None},
        {"nbf": "0"},
    ],
    ids=str,
)
async def test_missing_or_mistyped_claims_are_malformed(issuer, clock, gateway, claims):
    token = issuer.sign(issuer.claims(clock.now, **claims))
    assert (await gateway.refusal(token)).code == "invalid_id_token"


async def test_a_kid_the_issuer_does_not_publish_is_an_unknown_key(issuer, clock, gateway):
    issuer.add_key("RSA", "unpublished", publish=False)
    token = issuer.sign(issuer.claims(clock.now), key="unpublished")
    assert (await gateway.refusal(token)).code == "id_token_unknown_key"


async def test_a_jwks_url_that_is_not_allowed_is_an_untrusted_issuer(issuer, clock):
    cache = JwksCache(HttpxJwksFetcher(allow_loopback=False), clock)  # loopback not allowed
    verifier = IdTokenVerifier(cache, CryptographySignatures(), clock)
    trusted = TrustedIssuer(issuer.url, (issuer.audience,), issuer.jwks_url)
    with pytest.raises(ApiError) as refused:
        await verifier.verify(issuer.sign(issuer.claims(clock.now)), [trusted])
    assert refused.value.code == "untrusted_issuer"
    assert issuer.jwks_fetches == 0


async def test_keys_for_encryption_or_another_algorithm_are_not_used(issuer, clock, gateway):
    issuer.retire("rsa-1")
    issuer.extra_jwks += [
        {**issuer.public_jwk("rsa-1"), "use": "enc"},
        {**issuer.public_jwk("rsa-1"), "alg": "RS512"},
    ]
    token = issuer.sign(issuer.claims(clock.now), key="rsa-1")
    assert (await gateway.refusal(token)).code == "id_token_algorithm_not_allowed"


async def test_a_token_without_kid_is_refused_when_several_keys_fit(issuer, clock, gateway):
    issuer.add_key("EC", "ec-2")
    token = issuer.sign(issuer.claims(clock.now), key="ec-1", header_overrides={"kid": None})
    assert (await gateway.refusal(token)).code == "id_token_unknown_key"


# -- time --------------------------------------------------------------------------------------


async def test_an_expired_token_is_refused_after_the_skew(issuer, clock, gateway):
    claims = issuer.claims(clock.now - 7200)  # expired an hour ago
    assert (await gateway.refusal(issuer.sign(claims))).code == "id_token_expired"
    within = issuer.claims(clock.now - 3600 - CLOCK_SKEW_SECONDS + 5)  # expired 55 s ago
    assert (await gateway.verify(issuer.sign(within))).subject == "user-1234"


async def test_a_token_before_its_nbf_is_not_yet_valid(issuer, clock, gateway):
    token = issuer.sign(issuer.claims(clock.now, nbf=int(clock.now) + 600))
    assert (await gateway.refusal(token)).code == "id_token_not_yet_valid"
    within = issuer.sign(issuer.claims(clock.now, nbf=int(clock.now) + CLOCK_SKEW_SECONDS - 5))
    assert (await gateway.verify(within)).subject == "user-1234"


async def test_a_token_issued_in_the_future_is_not_yet_valid(issuer, clock, gateway):
    token = issuer.sign(issuer.claims(clock.now + 600))
    assert (await gateway.refusal(token)).code == "id_token_not_yet_valid"


async def test_a_token_older_than_the_issuers_max_age_is_too_old(issuer, clock):
    gateway = Gateway(issuer, clock, max_age_seconds=300)
    old = issuer.claims(clock.now - 300 - CLOCK_SKEW_SECONDS - 1)
    assert (await gateway.refusal(issuer.sign(old))).code == "id_token_too_old"
    recent = issuer.claims(clock.now - 300)
    assert (await gateway.verify(issuer.sign(recent))).subject == "user-1234"


# -- the key set: rotation, refetching, outages ------------------------------------------------


async def test_a_newly_published_key_is_accepted_after_one_refetch(issuer, clock, gateway):
    await gateway.verify(issuer.sign(issuer.claims(clock.now)))
    issuer.add_key("RSA", "rsa-2")
    issuer.retire("rsa-1")
    clock.advance(61)  # a minute after the last fetch
    verified = await gateway.verify(issuer.sign(issuer.claims(clock.now), key="rsa-2"))
    assert verified.key_id == "rsa-2"
    assert issuer.jwks_fetches == 2
    refused = await gateway.refusal(issuer.sign(issuer.claims(clock.now), key="rsa-1"))
    assert refused.code == "id_token_unknown_key"  # retired: gone with the refetch


async def test_an_unknown_kid_refetches_at_most_once_a_minute(issuer, clock, gateway):
    await gateway.verify(issuer.sign(issuer.claims(clock.now)))  # fetch 1
    clock.advance(30)
    for n in range(5):
        token = issuer.sign(issuer.claims(clock.now), kid=f"made-up-{n}")
        assert (await gateway.refusal(token)).code == "id_token_unknown_key"
    assert issuer.jwks_fetches == 1  # within a minute of the last fetch: none
    clock.advance(31)
    for n in range(5):
        token = issuer.sign(issuer.claims(clock.now), kid=f"made-up-again-{n}")
        assert (await gateway.refusal(token)).code == "id_token_unknown_key"
    assert issuer.jwks_fetches == 2  # a minute on: one


async def test_the_key_set_is_refetched_when_its_max_age_has_passed(issuer, clock, gateway):
    issuer.max_age = 1000
    await gateway.verify(issuer.sign(issuer.claims(clock.now)))
    clock.advance(999)
    await gateway.verify(issuer.sign(issuer.claims(clock.now)))
    assert issuer.jwks_fetches == 1
    clock.advance(2)
    await gateway.verify(issuer.sign(issuer.claims(clock.now)))
    assert issuer.jwks_fetches == 2


@pytest.mark.parametrize(
    ("max_age", "fresh_for"), [(10, 300), (None, 3600), (10**9, 86_400)], ids=str
)
async def test_max_age_is_clamped_to_five_minutes_and_a_day(
    issuer, clock, gateway, max_age, fresh_for
):
    issuer.max_age = max_age
    await gateway.verify(issuer.sign(issuer.claims(clock.now)))
    clock.advance(fresh_for - 1)
    await gateway.verify(issuer.sign(issuer.claims(clock.now)))
    assert issuer.jwks_fetches == 1
    clock.advance(2)
    await gateway.verify(issuer.sign(issuer.claims(clock.now)))
    assert issuer.jwks_fetches == 2


@pytest.mark.parametrize("how", ["refused", "503"])
async def test_an_issuer_down_without_a_cached_copy_is_unavailable(issuer, clock, gateway, how):
    issuer.go_down(how)
    refused = await gateway.refusal(issuer.sign(issuer.claims(clock.now)))
    assert (refused.status, refused.code) == (503, "issuer_unavailable")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


@pytest.mark.parametrize("how", ["refused", "503"])
async def test_an_issuer_down_is_served_from_the_cached_copy_within_a_day(
    issuer, clock, gateway, how
):
    await gateway.verify(issuer.sign(issuer.claims(clock.now)))  # fresh for 600 s
    issuer.go_down(how)
    clock.advance(600 + 86_400 - 10)  # stale, within the bound
    assert (await gateway.verify(issuer.sign(issuer.claims(clock.now)))).key_id == "rsa-1"
    clock.advance(20)  # past the bound
    refused = await gateway.refusal(issuer.sign(issuer.claims(clock.now)))
    assert refused.code == "issuer_unavailable"


async def test_a_failed_fetch_is_not_retried_within_a_minute(issuer, clock, gateway):
    issuer.go_down("503")
    for _ in range(3):
        await gateway.refusal(issuer.sign(issuer.claims(clock.now)))
        clock.advance(10)
    assert issuer.jwks_fetches == 1  # at 0 s; none at 10 and 20 s
    issuer.come_back()
    refused = await gateway.refusal(issuer.sign(issuer.claims(clock.now)))
    assert refused.code == "issuer_unavailable"  # back, but 30 s after the failure: not tried
    assert refused.headers["Retry-After"] == "30"
    clock.advance(30)
    assert (await gateway.verify(issuer.sign(issuer.claims(clock.now)))).subject == "user-1234"
    assert issuer.jwks_fetches == 2


async def test_an_unknown_kid_while_the_issuer_is_down_is_unavailable(issuer, clock, gateway):
    await gateway.verify(issuer.sign(issuer.claims(clock.now)))
    issuer.go_down("503")
    clock.advance(61)
    issuer.add_key("RSA", "rsa-2", publish=False)
    refused = await gateway.refusal(issuer.sign(issuer.claims(clock.now), key="rsa-2"))
    assert refused.code == "issuer_unavailable"  # the key may be in the set it would serve


async def test_a_body_that_is_no_key_set_counts_as_a_failed_fetch(clock):
    class Answers:
        def __init__(self, *answers: FetchedJwks) -> None:
            self.answers = list(answers)

        async def get(self, url: str) -> FetchedJwks:
            return self.answers.pop(0)

    for body in (b"[]", b'{"keys": {}}', b"not json", b'{"keys": []}' + b" " * 300_000):
        cache = JwksCache(Answers(FetchedJwks(200, body, None)), clock)
        with pytest.raises(ApiError) as refused:
            await cache.key("https://issuer.example.com/jwks", "k", "RS256")
        assert refused.value.code == "issuer_unavailable", body[:20]


async def test_the_cache_holds_a_bounded_number_of_jwks_urls(clock):
    fetched: list[str] = []

    class Empty:
        async def get(self, url: str) -> FetchedJwks:
            fetched.append(url)
            return FetchedJwks(200, b'{"keys": []}', None)

    cache = JwksCache(Empty(), clock, max_urls=2)
    for url in ("https://a.example.com/k", "https://b.example.com/k", "https://c.example.com/k"):
        with pytest.raises(ApiError):
            await cache.key(url, "k", "RS256")
    with pytest.raises(ApiError):
        await cache.key("https://a.example.com/k", "k", "RS256")  # evicted: fetched again
    assert fetched.count("https://a.example.com/k") == 2


async def test_a_fetch_that_fails_to_connect_is_jwks_unavailable():
    with pytest.raises(JwksUnavailable):
        await HttpxJwksFetcher(allow_loopback=True).get("http://127.0.0.1:9/jwks")


async def test_the_local_fetcher_refuses_a_name_that_resolves_to_a_private_address():
    async def private(host: str, port: int) -> list[str]:
        return ["10.0.0.7"]

    with pytest.raises(JwksUnavailable):
        await HttpxJwksFetcher(resolve=private).get("https://issuer.example.com/jwks")


# -- what refusals say, and what is logged -----------------------------------------------------


async def test_refusals_name_the_kind_of_token_and_never_its_content(issuer, clock, gateway):
    token = issuer.sign(issuer.claims(clock.now, aud="another-app", sub="secret-subject"))
    as_id_token = await gateway.refusal(token)
    as_app_check = await gateway.refusal(token, what="app_check")
    assert as_id_token.message.startswith("The ID token ")
    assert as_app_check.message.startswith("The App Check token ")
    assert as_id_token.code == as_app_check.code == "id_token_audience_mismatch"
    for refusal in (as_id_token, as_app_check):
        assert "secret-subject" not in refusal.to_json() and token not in refusal.to_json()
        assert refusal.headers["WWW-Authenticate"].startswith("Bearer")


async def test_logs_carry_the_issuer_and_a_subject_hash_only(issuer, clock, gateway, caplog):
    token = issuer.sign(issuer.claims(clock.now - 7200, sub="secret-subject"))
    with caplog.at_level(logging.INFO, logger="fluxgate.id_tokens"):
        await gateway.refusal(token)
    assert subject_hash(issuer.url, "secret-subject") in caplog.text
    assert issuer.url in caplog.text
    assert "secret-subject" not in caplog.text and token.split(".")[1] not in caplog.text


# -- the rules' small parts --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com",
        "https://appleid.apple.com/auth/keys",
        "https://8.8.8.8/jwks",
    ],
)
def test_public_https_jwks_urls_are_allowed(url):
    assert check_issuer_url(url, allow_loopback=False) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://issuer.example.com/jwks",  # not https
        "https://user:pw@issuer.example.com/jwks",
        "https://issuer.example.com/jwks#frag",
        "https://127.0.0.1/jwks",
        "https://localhost/jwks",
        "https://127.1/jwks",
        "https://0x7f.0.0.1/jwks",
        "https://2130706433/jwks",
        "https://10.0.0.1/jwks",
        "https://169.254.169.254/latest",
        "https://[::1]/jwks",
        "https://[::ffff:127.0.0.1]/jwks",
        "https://[fd00::1]/jwks",
        "https://metadata/jwks",
        "https://metadata.google.internal/jwks",
        "https://issuer.example.com\\@evil/jwks",
        "ftp://issuer.example.com/jwks",
        "https:///jwks",
    ],
)
def test_jwks_urls_to_private_hosts_or_without_https_are_refused(url):
    with pytest.raises(ValueError):
        check_issuer_url(url, allow_loopback=False)


def test_loopback_issuers_are_allowed_only_under_the_test_setting():
    for url in ("http://127.0.0.1:8080/jwks", "http://localhost:9/jwks", "https://[::1]/jwks"):
        assert check_issuer_url(url, allow_loopback=True) == url
    with pytest.raises(ValueError):
        check_issuer_url("http://10.0.0.1/jwks", allow_loopback=True)


@pytest.mark.parametrize(
    ("header", "max_age"),
    [
        (None, None),
        ("public, max-age=21600, must-revalidate", 21600),
        ("no-store", 0),
        ("max-age=abc", None),
        ('max-age="60"', 60),
    ],
)
def test_cache_control_max_age(header, max_age):
    assert cache_max_age(header) == max_age


@pytest.mark.parametrize(
    "config",
    [
        {"audiences": ()},
        {"audiences": ("",)},
        {"algorithms": ("RS256", "HS256")},
        {"algorithms": ("none",)},
        {"algorithms": ()},
        {"max_age_seconds": 0},
    ],
    ids=str,
)
def test_a_trusted_issuer_that_could_accept_forgeries_or_nothing_cannot_be_made(config):
    settings = {"audiences": ("app",), **config}
    with pytest.raises(ValueError):
        TrustedIssuer(
            "https://issuer.example.com", jwks_url="https://issuer.example.com/k", **settings
        )


def test_subject_hash_is_short_and_apart_per_issuer():
    assert len(subject_hash("https://a", "u")) == 16
    assert subject_hash("https://a", "u") != subject_hash("https://b", "u")
