"""Sign-in for the tests: an OpenID Connect issuer and a Firebase App Check double, each a
real HTTP server on loopback (:class:`~tests.support.oidc_issuer.OidcIssuer`), which both
runtimes fetch keys from (the Worker on workerd too, under ``issuer_allow_loopback``); and a
key whose ``sign_in`` trusts them, made through the admin API.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .admin import ADMIN_HEADERS
from .oidc_issuer import OidcIssuer

APP_AUDIENCE = "com.example.images"  # the app's client id at its sign-in provider
PROJECT_NUMBER = "123456789012"  # the App Check project
APP_ID = "1:123456789012:ios:0a1b2c3d4e5f"  # the genuine app


@pytest.fixture
def oidc_issuer() -> Iterator[OidcIssuer]:
    """A sign-in provider that the app's users sign in at."""
    with OidcIssuer(audience=APP_AUDIENCE) as issuer:
        yield issuer


@pytest.fixture
def app_check_issuer() -> Iterator[OidcIssuer]:
    """Firebase App Check's double: tokens for the project's apps (``sub``: the app id)."""
    with OidcIssuer(audience=f"projects/{PROJECT_NUMBER}") as issuer:
        yield issuer


def issuer_config(issuer: OidcIssuer, **fields: Any) -> dict[str, Any]:
    """The ``sign_in.issuers`` entry that trusts ``issuer``."""
    return {
        "issuer": issuer.url,
        "audiences": [issuer.audience],
        "jwks_url": issuer.jwks_url,
        **fields,
    }


def app_check_config(issuer: OidcIssuer, **fields: Any) -> dict[str, Any]:
    """``sign_in.app_check`` against the App Check double."""
    return {
        "project_number": PROJECT_NUMBER,
        "issuer": issuer.url,
        "jwks_url": issuer.jwks_url,
        **fields,
    }


def app_check_token(issuer: OidcIssuer, now: float, app_id: str = APP_ID) -> str:
    """What the App Check SDK gives the genuine app (an hour's token)."""
    return issuer.sign(issuer.claims(now, sub=app_id))


def sign_in_key(client: httpx.Client, sign_in: dict[str, Any], name: str = "app") -> str:
    """A new key with ``sign_in``; its id (what the app is configured with)."""
    response = client.post(
        "/v1/admin/keys", json={"name": name, "sign_in": sign_in}, headers=ADMIN_HEADERS
    )
    assert response.status_code == 201, response.text
    key_id: str = response.json()["id"]
    return key_id


_addresses = itertools.count(1)


def fresh_client() -> dict[str, str]:
    """A client address no other exchange has used (the Worker reads ``CF-Connecting-IP``;
    the local app, the peer): refused exchanges count as failed attempts of their client,
    and one shared address would be shut out across tests."""
    n = next(_addresses)
    return {"CF-Connecting-IP": f"10.{os.getpid() % 250}.{n // 250 % 250}.{n % 250 + 1}"}


def exchange(
    client: httpx.Client,
    key_id: str,
    id_token: str,
    *,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    """``POST /v1/tokens/exchange`` from a fresh client address unless ``headers`` name one
    (``X-Firebase-AppCheck`` goes there too); ``fields`` go into the body."""
    sent = {**fresh_client(), **(headers or {})}
    body = {"key_id": key_id, "subject_token": id_token, **fields}
    return client.post("/v1/tokens/exchange", json=body, headers=sent)
