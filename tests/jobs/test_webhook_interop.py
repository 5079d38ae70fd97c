"""Fluxgate's webhooks are Standard Webhooks, checked against the official library,
``standardwebhooks``: what Fluxgate signs, the library verifies; what the library signs,
Fluxgate's ``verify`` accepts; during a rotation a receiver holding only the old secret, or
only the new one, verifies; a tampered delivery fails in both. End to end, real deliveries
from both runtimes verify with the library alone."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks import WebhookVerificationError as LibraryVerificationError

from fluxgate.delivery.signing import UrlSigner, parse_signing_keys
from fluxgate.jobs.webhooks import (
    WebhookVerificationError,
    secrets_for_key,
    sign,
    signed_headers,
    verify,
)

from ..support.bodies import generate, generation
from ..support.clock import Clock, ClockDouble, WorkerdClock
from ..support.config import ADMIN_TOKEN
from ..support.polling import wait_for
from ..support.receiver import Receiver

pytestmark = pytest.mark.runtimes("local", "worker")

KEY_ID = "key_0123456789abcdef"
OLD_SIGNING_KEY = "old=" + "o" * 40
NEW_SIGNING_KEY = "new=" + "n" * 40
# A payload with non-ASCII text: the library signs and verifies text, Fluxgate bytes.
BODY = json.dumps(
    {"type": "image.generation.succeeded", "data": {"id": "job_1", "prompt": "café ☕"}},
    ensure_ascii=False,
).encode()
PAYLOAD = json.loads(BODY)


def key_secrets(*signing_keys: str) -> list[str]:
    """A key's webhook secrets under a URL-signing keyring (the current key first)."""
    return secrets_for_key(UrlSigner(parse_signing_keys(",".join(signing_keys))), KEY_ID)


# Before, during and after a keyring rotation: what a receiver can hold.
BEFORE = key_secrets(OLD_SIGNING_KEY)
DURING = key_secrets(NEW_SIGNING_KEY, OLD_SIGNING_KEY)
AFTER = key_secrets(NEW_SIGNING_KEY)
SECRET = AFTER[0]
# The example secret of the Standard Webhooks documentation: not one Fluxgate made.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + "A" * 32


def library_headers(secrets: list[str], message_id: str, timestamp: int) -> dict[str, str]:
    """The headers a Standard Webhooks sender built on the official library would send:
    one signature per secret, space-separated."""
    when = datetime.fromtimestamp(timestamp, UTC)
    signatures = [Webhook(s).sign(message_id, when, BODY.decode()) for s in secrets]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }


# -- Fluxgate signs, the library verifies -----------------------------------------------------


@pytest.mark.parametrize("secret", [SECRET, SPEC_SECRET], ids=["fluxgate", "spec"])
def test_the_library_verifies_what_fluxgate_signs(secret: str):
    headers = signed_headers([secret], "job_1.succeeded", BODY, now=time.time())
    assert Webhook(secret).verify(BODY, headers) == PAYLOAD


@pytest.mark.parametrize("secret", [SECRET, SPEC_SECRET], ids=["fluxgate", "spec"])
def test_one_signature_is_the_same_in_both(secret: str):
    timestamp = 1_700_000_000
    ours = sign(secret, "msg_1", timestamp, BODY)
    theirs = Webhook(secret).sign("msg_1", datetime.fromtimestamp(timestamp, UTC), BODY.decode())
    assert ours == theirs


# -- the library signs, Fluxgate verifies -----------------------------------------------------


@pytest.mark.parametrize("secret", [SECRET, SPEC_SECRET], ids=["fluxgate", "spec"])
def test_fluxgate_verifies_what_the_library_signs(secret: str):
    now = int(time.time())
    headers = library_headers([secret], "msg_1", now)
    assert verify(secret, headers, BODY, now=now) == PAYLOAD


def test_fluxgate_verifies_a_library_rotation_with_either_secret():
    now = int(time.time())
    headers = library_headers([SPEC_SECRET, SECRET], "msg_1", now)
    assert verify(SPEC_SECRET, headers, BODY, now=now) == PAYLOAD
    assert verify(SECRET, headers, BODY, now=now) == PAYLOAD
    with pytest.raises(WebhookVerificationError):
        verify(OTHER_SECRET, headers, BODY, now=now)


# -- rotation ---------------------------------------------------------------------------------


def test_during_a_keyring_rotation_fluxgate_signs_with_the_old_and_the_new_secret():
    current, previous = DURING  # what a receiver fetched after the rotation, or before it
    assert current == AFTER[0] and previous == BEFORE[0] and current != previous
    headers = signed_headers(DURING, "job_1.succeeded", BODY, now=time.time())
    assert len(headers["webhook-signature"].split(" ")) == 2


@pytest.mark.parametrize("held", [BEFORE[0], AFTER[0]], ids=["old secret", "new secret"])
def test_during_a_rotation_a_receiver_with_one_secret_verifies_with_the_library(held: str):
    headers = signed_headers(DURING, "job_1.succeeded", BODY, now=time.time())
    assert Webhook(held).verify(BODY, headers) == PAYLOAD
    assert verify(held, headers, BODY) == PAYLOAD


def test_a_receiver_with_another_secret_is_refused_by_both():
    headers = signed_headers(DURING, "job_1.succeeded", BODY, now=time.time())
    with pytest.raises(LibraryVerificationError):
        Webhook(OTHER_SECRET).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        verify(OTHER_SECRET, headers, BODY)


# -- tampering --------------------------------------------------------------------------------

Delivery = tuple[dict[str, str], bytes]


def _later(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)}


TAMPERING: dict[str, Callable[[dict[str, str], bytes], Delivery]] = {
    "body": lambda h, b: (h, b.replace(b"job_1", b"job_2")),
    "body, a byte added": lambda h, b: (h, b + b" "),
    "timestamp": lambda h, b: (_later(h), b),
    "message id": lambda h, b: ({**h, "webhook-id": "job_2.succeeded"}, b),
}


@pytest.mark.parametrize("tamper", TAMPERING.values(), ids=TAMPERING.keys())
@pytest.mark.parametrize("held", [BEFORE[0], AFTER[0]], ids=["old secret", "new secret"])
def test_a_tampered_delivery_fails_in_both(
    tamper: Callable[[dict[str, str], bytes], Delivery], held: str
):
    headers, body = tamper(signed_headers(DURING, "job_1.succeeded", BODY, now=time.time()), BODY)
    with pytest.raises(LibraryVerificationError):
        Webhook(held).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        verify(held, headers, body)


@pytest.mark.parametrize("age", [-600, 600], ids=["too old", "too new"])
def test_both_refuse_a_timestamp_more_than_five_minutes_off(age: int):
    headers = signed_headers([SECRET], "job_1.succeeded", BODY, now=time.time() + age)
    with pytest.raises(LibraryVerificationError):
        Webhook(SECRET).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers, BODY)


def library_receiver(secret: str, headers: dict[str, str], body: bytes) -> int:
    """A receiver on the library written as docs/reference.md shows: 400 for a delivery that
    does not verify, whatever is wrong with it, and never a 500."""
    try:
        Webhook(secret).verify(body, headers)
    except (LibraryVerificationError, ValueError):
        return 400
    return 200


MALFORMED: dict[str, Callable[[dict[str, str], bytes], Delivery]] = {
    "signature without a version": lambda h, b: ({**h, "webhook-signature": "garbage"}, b),
    "signature with two commas": lambda h, b: ({**h, "webhook-signature": "v1,a,b"}, b),
    "signature not base64": lambda h, b: ({**h, "webhook-signature": "v1,@@@"}, b),
    "timestamp not a number": lambda h, b: ({**h, "webhook-timestamp": "soon"}, b),
    "body not UTF-8": lambda h, b: (h, b"\xff" + b),
    "no signature": lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
}


@pytest.mark.parametrize("malform", MALFORMED.values(), ids=MALFORMED.keys())
def test_the_readme_receiver_on_the_library_answers_400_never_500(
    malform: Callable[[dict[str, str], bytes], Delivery],
):
    headers, body = signed_headers([SECRET], "job_1.succeeded", BODY, now=time.time()), BODY
    assert library_receiver(SECRET, headers, body) == 200
    assert library_receiver(SECRET, *malform(headers, body)) == 400


# -- end to end: real deliveries, on both runtimes --------------------------------------------

ASYNC = {"Prefer": "respond-async"}
E2E = pytest.mark.settings(webhook_allow_loopback=True, webhook_retry_base_seconds=0.01)


@pytest.fixture
def clock(runtime: str) -> ClockDouble:
    """Wall time on both runtimes: the library checks a delivery's timestamp against the
    wall clock, while the local runtime's default test clock is set years ahead."""
    if runtime == "worker":
        return WorkerdClock()
    return Clock(now=time.time())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def delivered(client, auth: dict[str, str], receiver: Receiver, prompt: str) -> Delivery:
    """Submit an async generation with a webhook; the delivery the receiver got for it."""
    body = generation(prompt, square=256, steps=1, webhook_url=receiver.url)
    job = generate(client, auth, body, headers=ASYNC)
    assert job.status_code == 202, job.text
    message_id = f"{job.json()['id']}.succeeded"

    def arrived() -> Delivery | None:
        found = [(h, b) for h, b, _ in receiver.deliveries if h["webhook-id"] == message_id]
        return found[0] if found else None

    return wait_for(arrived)


@E2E
def test_a_real_delivery_verifies_with_the_library_and_any_current_secret(
    client, auth, receiver, clock
):
    headers, body = delivered(client, auth, receiver, "a lighthouse at dusk")
    secrets = client.get("/v1/webhooks/secret", headers=auth).json()
    payload = Webhook(secrets["secret"]).verify(body, headers)
    assert payload["type"] == "image.generation.succeeded"
    assert f"{payload['data']['id']}.succeeded" == headers["webhook-id"]
    # The test keyring holds two URL-signing keys (a keyring rotation): each secret alone.
    assert len(secrets["all"]) == 2
    for secret in secrets["all"]:
        assert Webhook(secret).verify(body, headers) == payload


@E2E
def test_after_a_key_rotation_deliveries_verify_with_the_new_secret_only(client, receiver, clock):
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    created = client.post("/v1/admin/keys", json={"name": "hooks"}, headers=admin).json()
    old = {"Authorization": f"Bearer {created['key']}"}
    old_secret = client.get("/v1/webhooks/secret", headers=old).json()["secret"]
    rotated = client.post(f"/v1/admin/keys/{created['id']}/rotate", json={}, headers=admin)
    assert rotated.status_code == 201, rotated.text
    new = {"Authorization": f"Bearer {rotated.json()['key']}"}
    new_secret = client.get("/v1/webhooks/secret", headers=new).json()["secret"]
    assert new_secret != old_secret

    headers, body = delivered(client, new, receiver, "a harbour in fog")
    assert Webhook(new_secret).verify(body, headers)["type"] == "image.generation.succeeded"
    with pytest.raises(LibraryVerificationError):
        Webhook(old_secret).verify(body, headers)
