"""Sign-in token exchange (``POST /v1/tokens/exchange``) and Firebase App Check: an app
without a server of its own trades its user's ID token for a client token."""

import json

import pytest

from ..support.admin import ADMIN_HEADERS
from ..support.bodies import generate, generation
from ..support.runtimes import MOVES_CLOCK
from ..support.sign_in import (
    APP_ID,
    app_check_config,
    app_check_token,
    exchange,
    fresh_client,
    issuer_config,
    sign_in_key,
)

pytestmark = [
    pytest.mark.runtimes("local", "worker"),
    pytest.mark.settings(issuer_allow_loopback=True),
]

BODY = generation("a lighthouse", square=512, steps=10)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(response, status: int, code: str):
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text
    return response


# -- the happy path ---------------------------------------------------------------------------


def test_a_signed_in_user_gets_a_client_token_and_generates_with_it(client, oidc_issuer, clock):
    key_id = sign_in_key(client, {"issuers": [issuer_config(oidc_issuer)]})
    id_token = oidc_issuer.sign(oidc_issuer.claims(clock(), sub="alice-42"))

    r = exchange(client, key_id, id_token)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert body["token"].startswith("fgt_") and body["access_token"] == body["token"]
    assert body["token_type"] == "Bearer"
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["subject"] == "alice-42"
    assert body["scopes"] == ["images:generate", "images:read"]
    assert body["scope"] == "images:generate images:read"
    assert body["expires_in"] == 3600 and body["expires_at"] >= int(clock()) + 3599

    made = generate(client, bearer(body["token"]), BODY)
    assert made.status_code == 200, made.text
    usage = client.get("/v1/usage", headers=bearer(body["token"])).json()
    assert usage["user"] == "alice-42" and usage["requests"] == 1


def test_rs256_and_es256_are_both_accepted(client, oidc_issuer, clock):
    key_id = sign_in_key(client, {"issuers": [issuer_config(oidc_issuer)]})
    for key in ("rsa-1", "ec-1"):
        token = oidc_issuer.sign(oidc_issuer.claims(clock()), key=key)
        assert exchange(client, key_id, token).status_code == 200, key


def test_the_configured_claim_prefixed_becomes_the_end_user(client, oidc_issuer, clock):
    key_id = sign_in_key(
        client,
        {
            "issuers": [issuer_config(oidc_issuer, user_prefix="idp:")],
            "user_claim": "email",
            "token_ttl_seconds": 600,
            "scopes": ["images:generate"],
        },
    )
    token = oidc_issuer.sign(
        oidc_issuer.claims(clock(), email="bo@example.com", email_verified=True)
    )
    body = exchange(client, key_id, token).json()
    assert body["subject"] == "idp:bo@example.com"
    assert body["scopes"] == ["images:generate"] and body["expires_in"] == 600
    no_email = oidc_issuer.sign(oidc_issuer.claims(clock()))
    refused(exchange(client, key_id, no_email), 401, "invalid_id_token")


def test_an_email_becomes_the_end_user_only_when_the_issuer_verified_it(client, oidc_issuer, clock):
    key_id = sign_in_key(client, {"issuers": [issuer_config(oidc_issuer)], "user_claim": "email"})
    typed = oidc_issuer.claims(clock(), email="victim@example.com", email_verified=False)
    refused(exchange(client, key_id, oidc_issuer.sign(typed)), 401, "invalid_id_token")
    for not_true in (1, "yes", None):
        claims = {**typed, "email_verified": not_true}
        refused(exchange(client, key_id, oidc_issuer.sign(claims)), 401, "invalid_id_token")
    checked = {**typed, "email_verified": True}
    assert exchange(client, key_id, oidc_issuer.sign(checked)).json()["subject"] == (
        "victim@example.com"
    )


def test_auth0_style_subjects_are_end_user_ids_and_newlines_are_not(client, oidc_issuer, clock):
    key_id = sign_in_key(client, {"issuers": [issuer_config(oidc_issuer)]})
    auth0 = oidc_issuer.sign(oidc_issuer.claims(clock(), sub="auth0|65f0c1d2e3"))
    assert exchange(client, key_id, auth0).json()["subject"] == "auth0|65f0c1d2e3"
    sneaky = oidc_issuer.sign(oidc_issuer.claims(clock(), sub="alice\n"))
    refused(exchange(client, key_id, sneaky), 401, "invalid_id_token")


def test_an_app_may_ask_for_fewer_scopes_never_more(client, oidc_issuer, clock):
    key_id = sign_in_key(client, {"issuers": [issuer_config(oidc_issuer)]})
    token = oidc_issuer.sign(oidc_issuer.claims(clock()))
    assert exchange(client, key_id, token, scope="images:read").json()["scopes"] == ["images:read"]
    r = refused(exchange(client, key_id, token, scope="admin"), 400, "invalid_scope")
    assert r.json()["error"]["param"] == "scope"


def test_a_rotated_key_keeps_its_signed_in_users_a_revoked_key_ends_them(
    client, oidc_issuer, clock
):
    key_id = sign_in_key(client, {"issuers": [issuer_config(oidc_issuer)]})
    token = exchange(client, key_id, oidc_issuer.sign(oidc_issuer.claims(clock()))).json()
    rotated = client.post(
        f"/v1/admin/keys/{key_id}/rotate", json={"grace_seconds": 0}, headers=ADMIN_HEADERS
    )
    assert rotated.status_code == 201
    assert client.get("/v1/usage", headers=bearer(token["token"])).status_code == 200
    client.post(f"/v1/admin/keys/{key_id}/revoke", headers=ADMIN_HEADERS)
    refused(client.get("/v1/usage", headers=bearer(token["token"])), 401, "revoked_api_key")
    fresh = oidc_issuer.sign(oidc_issuer.claims(clock()))
    refused(exchange(client, key_id, fresh), 403, "exchange_not_enabled")


# -- every refusal ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("forge", "code"),
    [
        ("tampered", "id_token_signature_invalid"),
        ("alg_none", "id_token_algorithm_not_allowed"),
        ("hs256_with_public_key", "id_token_algorithm_not_allowed"),
        ("expired", "id_token_expired"),
        ("not_yet_valid", "id_token_not_yet_valid"),
        ("issued_in_the_future", "id_token_not_yet_valid"),
        ("wrong_audience", "id_token_audience_mismatch"),
        ("wrong_issuer", "untrusted_issuer"),
        ("unknown_kid", "id_token_unknown_key"),
        ("not_a_jwt", "invalid_id_token"),
    ],
)
def test_an_id_token_that_does_not_hold_is_refused_with_its_own_code(
    client, oidc_issuer, clock, audit_lines, forge, code
):
    key_id = sign_in_key(client, {"issuers": [issuer_config(oidc_issuer)]})
    now = clock()
    claims = oidc_issuer.claims(now)
    forged = {
        "tampered": lambda: oidc_issuer.tampered(oidc_issuer.sign(claims)),
        "alg_none": lambda: oidc_issuer.unsigned(claims),
        "hs256_with_public_key": lambda: oidc_issuer.hs256_with_public_key(claims),
        "expired": lambda: oidc_issuer.sign(oidc_issuer.claims(now - 7200)),
        "not_yet_valid": lambda: oidc_issuer.sign({**claims, "nbf": int(now) + 600}),
        "issued_in_the_future": lambda: oidc_issuer.sign(oidc_issuer.claims(now + 600)),
        "wrong_audience": lambda: oidc_issuer.sign({**claims, "aud": "someone-else"}),
        "wrong_issuer": lambda: oidc_issuer.sign({**claims, "iss": "https://evil.example"}),
        "unknown_kid": lambda: oidc_issuer.sign(claims, kid="never-published"),
        "not_a_jwt": lambda: "not.a.jwt",
    }[forge]()
    r = refused(exchange(client, key_id, forged), 401, code)
    assert forged not in r.text
    assert forged.split(".")[0] not in json.dumps(audit_lines())


def test_a_token_for_a_key_that_exchanges_nothing_is_refused_alike(client, oidc_issuer, clock):
    """No such key, or a key without sign-in: the same answer (which is none of a caller's
    business)."""
    token = oidc_issuer.sign(oidc_issuer.claims(clock()))
    plain = client.post("/v1/admin/keys", json={"name": "plain"}, headers=ADMIN_HEADERS)
    for key_id in (plain.json()["id"], "key_0000000000000000", "nonsense"):
        refused(exchange(client, key_id, token), 403, "exchange_not_enabled")


def test_guessing_key_ids_or_forging_signatures_is_throttled_per_client(client, oidc_issuer, clock):
    """As a guessed API key is: past 20 failures a minute, 429; a valid sign-in still
    passes (one address is often many users)."""
    key_id = sign_in_key(client, {"issuers": [issuer_config(oidc_issuer)]})
    token = oidc_issuer.sign(oidc_issuer.claims(clock()))
    me = fresh_client()
    answers = [exchange(client, f"key_{n:016x}", token, headers=me).status_code for n in range(12)]
    forged = oidc_issuer.tampered(token)
    answers += [exchange(client, key_id, forged, headers=me).status_code for _ in range(8)]
    assert answers == [403] * 12 + [401] * 8
    refused(exchange(client, key_id, forged, headers=me), 429, "too_many_failed_attempts")
    unknown = exchange(client, "key_ffffffffffffffff", token, headers=me)
    refused(unknown, 429, "too_many_failed_attempts")
    assert exchange(client, key_id, token, headers=me).status_code == 200


def test_the_request_itself_must_be_a_token_exchange(client, oidc_issuer, clock):
    key_id = sign_in_key(client, {"issuers": [issuer_config(oidc_issuer)]})
    token = oidc_issuer.sign(oidc_issuer.claims(clock()))
    refused(
        exchange(client, key_id, token, grant_type="client_credentials"),
        400,
        "unsupported_grant_type",
    )
    refused(
        exchange(
            client,
            key_id,
            token,
            subject_token_type="urn:ietf:params:oauth:token-type:access_token",
        ),
        400,
        "invalid_request",
    )
    big = client.post(
        "/v1/tokens/exchange",
        content=b'{"key_id": "' + b"k" * 70_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413, big.text


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
def test_keys_rotated_at_the_issuer_are_fetched_once_a_minute_at_most(client, oidc_issuer, clock):
    key_id = sign_in_key(client, {"issuers": [issuer_config(oidc_issuer)]})
    first = oidc_issuer.sign(oidc_issuer.claims(clock()))
    assert exchange(client, key_id, first).status_code == 200
    fetches = oidc_issuer.jwks_fetches
    oidc_issuer.add_key("EC", "ec-2")  # the issuer starts signing with a new key
    token = oidc_issuer.sign(oidc_issuer.claims(clock()), key="ec-2")
    refused(exchange(client, key_id, token), 401, "id_token_unknown_key")
    assert oidc_issuer.jwks_fetches == fetches  # fetched less than a minute ago
    clock.advance(61)
    token = oidc_issuer.sign(oidc_issuer.claims(clock()), key="ec-2")
    assert exchange(client, key_id, token).status_code == 200
    assert oidc_issuer.jwks_fetches == fetches + 1


def test_an_unknown_key_id_does_not_make_the_issuer_fetched_again_at_once(
    client, oidc_issuer, clock
):
    key_id = sign_in_key(client, {"issuers": [issuer_config(oidc_issuer)]})
    assert (
        exchange(client, key_id, oidc_issuer.sign(oidc_issuer.claims(clock()))).status_code == 200
    )
    fetches = oidc_issuer.jwks_fetches
    for _ in range(5):
        forged = oidc_issuer.sign(oidc_issuer.claims(clock()), kid="never-published")
        refused(exchange(client, key_id, forged), 401, "id_token_unknown_key")
    assert oidc_issuer.jwks_fetches <= fetches + 1


def test_an_issuer_that_is_down_is_served_from_the_cached_keys_or_refused_503(
    client, oidc_issuer, clock
):
    key_id = sign_in_key(client, {"issuers": [issuer_config(oidc_issuer)]})
    token = oidc_issuer.sign(oidc_issuer.claims(clock()))
    assert exchange(client, key_id, token).status_code == 200
    oidc_issuer.go_down("refused")
    assert exchange(client, key_id, token).status_code == 200  # the cached copy


def test_an_issuer_never_reached_is_503_issuer_unavailable(client, oidc_issuer, clock):
    key_id = sign_in_key(client, {"issuers": [issuer_config(oidc_issuer)]})
    token = oidc_issuer.sign(oidc_issuer.claims(clock()))
    oidc_issuer.go_down("503")
    r = refused(exchange(client, key_id, token), 503, "issuer_unavailable")
    assert int(r.headers["Retry-After"]) >= 1


def test_the_exchange_is_audited_with_the_issuer_and_a_subject_hash_only(
    client, oidc_issuer, clock, audit_lines
):
    key_id = sign_in_key(client, {"issuers": [issuer_config(oidc_issuer)]})
    token = oidc_issuer.sign(oidc_issuer.claims(clock(), sub="secret-subject-77"))
    answer = exchange(client, key_id, token).json()
    lines = [line for line in audit_lines() if line.get("action") == "token.exchange"]
    assert len(lines) == 1, audit_lines()
    assert lines[0]["key_id"] == key_id and lines[0]["issuer"] == oidc_issuer.url
    assert len(lines[0]["subject_hash"]) >= 8
    text = json.dumps(audit_lines())
    for secret in ("secret-subject-77", token.split(".")[1], answer["token"]):
        assert secret not in text


# -- the key's configuration ------------------------------------------------------------------


@pytest.mark.settings(issuer_allow_loopback=False)
def test_loopback_issuers_are_refused_outside_tests(client, oidc_issuer):
    r = client.post(
        "/v1/admin/keys",
        json={"name": "app", "sign_in": {"issuers": [issuer_config(oidc_issuer)]}},
        headers=ADMIN_HEADERS,
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "sign_in"


def test_presets_are_written_out_as_what_they_trust(client):
    sign_in = {
        "issuers": [
            {"preset": "firebase", "project_id": "my-app", "user_prefix": "fb:"},
            {"preset": "apple", "audiences": ["com.example.images"], "user_prefix": "apple:"},
            {
                "preset": "google",
                "audiences": ["1234.apps.googleusercontent.com"],
                "user_prefix": "google:",
            },
        ]
    }
    key_id = sign_in_key(client, sign_in)
    stored = client.get(f"/v1/admin/keys/{key_id}", headers=ADMIN_HEADERS).json()["sign_in"]
    firebase, apple, google = stored["issuers"]
    assert firebase["issuer"] == "https://securetoken.google.com/my-app"
    assert firebase["audiences"] == ["my-app"] and firebase["algorithms"] == ["RS256"]
    assert firebase["jwks_url"].startswith("https://www.googleapis.com/")
    assert apple["issuer"] == "https://appleid.apple.com"
    assert apple["jwks_url"] == "https://appleid.apple.com/auth/keys"
    assert google["issuer"] == "https://accounts.google.com"
    assert stored["user_claim"] == "sub" and stored["app_check"] is None


@pytest.mark.parametrize(
    "sign_in",
    [
        {"issuers": []},
        {"issuers": [{"preset": "firebase"}]},
        {"issuers": [{"preset": "apple"}]},
        {"issuers": [{"issuer": "https://idp.example.com", "audiences": ["a"]}]},
        {"issuers": [{"preset": "google", "audiences": ["a"], "algorithms": ["HS256"]}]},
        {"issuers": [{"preset": "google", "audiences": ["a"]}], "scopes": ["admin"]},
        {"issuers": [{"preset": "google", "audiences": ["a"]}], "app_check": {}},
        {  # two providers' subjects must not meet
            "issuers": [
                {"preset": "google", "audiences": ["a"]},
                {"preset": "apple", "audiences": ["b"]},
            ]
        },
        {  # one prefix begins the other: "abob" at one is "bob" at the other
            "issuers": [
                {"preset": "google", "audiences": ["a"], "user_prefix": "a"},
                {"preset": "apple", "audiences": ["b"], "user_prefix": ""},
            ]
        },
        {"issuers": [{"preset": "google", "audiences": ["a"]}], "user_claim": "nonce"},
        {  # one issuer, two entries: only the first could ever match
            "issuers": [
                {"preset": "google", "audiences": ["a"], "user_prefix": "g:"},
                {"preset": "google", "audiences": ["b"], "user_prefix": "h:"},
            ]
        },
    ],
)
def test_a_configuration_that_cannot_work_is_refused_when_set(client, sign_in):
    r = client.post(
        "/v1/admin/keys", json={"name": "app", "sign_in": sign_in}, headers=ADMIN_HEADERS
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_request"


def test_sign_in_is_set_changed_and_removed_with_patch(client, oidc_issuer, clock):
    created = client.post("/v1/admin/keys", json={"name": "later"}, headers=ADMIN_HEADERS)
    key_id = created.json()["id"]
    token = oidc_issuer.sign(oidc_issuer.claims(clock()))
    refused(exchange(client, key_id, token), 403, "exchange_not_enabled")
    patch = {"sign_in": {"issuers": [issuer_config(oidc_issuer)]}}
    r = client.patch(f"/v1/admin/keys/{key_id}", json=patch, headers=ADMIN_HEADERS)
    assert r.status_code == 200, r.text
    assert exchange(client, key_id, token).status_code == 200
    r = client.patch(f"/v1/admin/keys/{key_id}", json={"sign_in": None}, headers=ADMIN_HEADERS)
    assert r.status_code == 200 and r.json()["sign_in"] is None
    refused(exchange(client, key_id, token), 403, "exchange_not_enabled")


# -- Firebase App Check -----------------------------------------------------------------------


def test_app_check_on_the_exchange_admits_only_the_genuine_app(
    client, oidc_issuer, app_check_issuer, clock
):
    key_id = sign_in_key(
        client,
        {
            "issuers": [issuer_config(oidc_issuer)],
            "app_check": app_check_config(app_check_issuer, app_ids=[APP_ID]),
        },
    )
    id_token = oidc_issuer.sign(oidc_issuer.claims(clock()))
    genuine = app_check_token(app_check_issuer, clock())
    refused(exchange(client, key_id, id_token), 401, "app_check_failed")
    for bad in (
        app_check_issuer.tampered(genuine),
        app_check_token(app_check_issuer, clock(), app_id="1:123456789012:android:ffff"),
        app_check_issuer.sign(app_check_issuer.claims(clock(), aud="projects/999")),
        oidc_issuer.sign(oidc_issuer.claims(clock())),  # an ID token is not an App Check token
    ):
        r = exchange(client, key_id, id_token, headers={"X-Firebase-AppCheck": bad})
        refused(r, 401, "app_check_failed")
    r = exchange(client, key_id, id_token, headers={"X-Firebase-AppCheck": genuine})
    assert r.status_code == 200, r.text
    # not asked on requests: the client token works without it
    assert generate(client, bearer(r.json()["token"]), BODY).status_code == 200


def test_app_check_on_every_request_of_the_keys_client_tokens(
    client, oidc_issuer, app_check_issuer, clock
):
    key_id = sign_in_key(
        client,
        {
            "issuers": [issuer_config(oidc_issuer)],
            "app_check": app_check_config(app_check_issuer, on_exchange=False, on_requests=True),
        },
    )
    token = exchange(client, key_id, oidc_issuer.sign(oidc_issuer.claims(clock()))).json()
    app = {"X-Firebase-AppCheck": app_check_token(app_check_issuer, clock())}
    refused(generate(client, bearer(token["token"]), BODY), 401, "app_check_failed")
    refused(client.get("/v1/usage", headers=bearer(token["token"])), 401, "app_check_failed")
    made = generate(client, bearer(token["token"]), BODY, headers=app)
    assert made.status_code == 200, made.text
    usage = client.get("/v1/usage", headers={**bearer(token["token"]), **app})
    assert usage.status_code == 200
