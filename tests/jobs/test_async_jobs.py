"""Async generations: submit, poll, webhooks (delivered to a real local HTTP server)."""

import json

import pytest

from fluxgate.jobs.webhooks import WebhookVerificationError, verify

from ..support.admin import new_key
from ..support.bodies import generate, generation
from ..support.clients import origin
from ..support.image_files import image_bytes
from ..support.polling import finished, wait_for
from ..support.receiver import Receiver
from ..support.runtimes import HOLDS_QUEUE

BODY = generation("a slow sunset", square=512, steps=4)
ASYNC = {"Prefer": "respond-async"}

# Webhooks go to a receiver on 127.0.0.1, and retries are quick.
pytestmark = [
    pytest.mark.settings(webhook_allow_loopback=True, webhook_retry_base_seconds=0.01),
    pytest.mark.runtimes("local", "worker"),
]


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def submit(client, auth, body=None, headers=ASYNC):
    r = generate(client, auth, body or BODY, headers=headers)
    assert r.status_code == 202, r.text
    return r


def test_respond_async_returns_202_with_a_job_to_poll(client, auth, ai):
    r = submit(client, auth)
    job = r.json()
    assert job["object"] == "image.job" and job["status"] in ("queued", "running", "succeeded")
    assert r.headers["location"] == job["status_url"] == f"{origin(client)}/v1/jobs/{job['id']}"
    assert r.headers["preference-applied"] == "respond-async"
    done = finished(client, auth, job)
    assert done["status"] == "succeeded" and ai.calls == 1
    result = done["result"]
    assert result["width"] == 512 and result["cached"] is False
    assert client.get(result["data"][0]["url"]).status_code == 200


def test_the_async_field_works_too_and_the_result_is_the_sync_body(client, auth):
    job = submit(client, auth, {**BODY, "async": True}, headers={}).json()
    result = finished(client, auth, job)["result"]
    sync = client.post("/v1/images/generations", json=BODY, headers=auth).json()
    assert sync["cached"] is True and sync["sha256"] == result["sha256"]
    assert set(sync) == set(result)


def test_a_cache_hit_completes_immediately(client, auth, ai):
    client.post("/v1/images/generations", json=BODY, headers=auth)
    r = submit(client, auth)
    assert r.json()["status"] == "succeeded" and r.json()["result"]["cached"] is True
    assert "retry-after" not in r.headers and ai.calls == 1


def test_refusals_are_synchronous(client, auth):
    r = client.post("/v1/images/generations", json={**BODY, "steps": 99}, headers={**auth, **ASYNC})
    assert r.status_code == 400
    r = client.post(
        "/v1/images/generations", json={**BODY, "webhook_url": "https://x.test/h"}, headers=auth
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "webhook_requires_async"


def test_jobs_belong_to_their_key(client, auth):
    job = submit(client, auth).json()
    other = new_key(client, "other")
    assert client.get(f"/v1/jobs/{job['id']}", headers=other).status_code == 404
    assert client.get("/v1/jobs/job_" + "0" * 24, headers=auth).status_code == 404


@pytest.mark.runtimes("local", reason=HOLDS_QUEUE)
def test_reference_images_travel_with_the_job(client, auth, ai, storage, jobs):
    files = {"input_image_0": ("a.png", image_bytes("PNG", 100, 80), "image/png")}
    jobs.pause()  # the staged input can be seen while the job waits
    r = client.post(
        "/v1/images/generations",
        headers={**auth, **ASYNC},
        data={"prompt": "mix", "width": "256", "height": "256", "steps": "2"},
        files=files,
    )
    assert r.status_code == 202
    staged = f"inputs/{r.json()['id']}/0.png"  # staged per job
    assert storage.object_exists(staged)
    jobs.resume()
    done = finished(client, auth, r.json())
    assert done["status"] == "succeeded" and len(done["result"]["reference_images"]) == 1
    assert b'name="input_image_0"' in ai.inputs[-1]["multipart"]["body"]
    assert not storage.object_exists(staged)  # removed once the job is done


def test_a_webhook_is_delivered_signed(client, auth, receiver, clock):
    job = submit(client, auth, {**BODY, "webhook_url": receiver.url}).json()
    wait_for(lambda: receiver.deliveries)
    headers, body, _ = receiver.deliveries[0]
    secret = client.get("/v1/webhooks/secret", headers=auth).json()["secret"]
    assert secret.startswith("whsec_")
    payload = verify(secret, headers, body, now=clock())
    assert payload["type"] == "image.generation.succeeded"
    assert payload["data"]["id"] == job["id"] and payload["data"]["result"]["sha256"]
    assert payload["data"]["status_url"] == job["status_url"]  # absolute, like the 202's
    assert payload["data"]["result"]["data"][0]["url"].startswith(f"{origin(client)}/v1/files/")
    assert headers["webhook-id"] == f"{job['id']}.succeeded"
    done = finished(client, auth, job)
    assert wait_for(
        lambda: (
            client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["webhook"]["state"]
            == "delivered"
        )
    )
    assert done["status"] == "succeeded"


def test_a_failing_receiver_is_retried_with_the_same_idempotency_id(client, auth, receiver):
    receiver.fail_next = 2
    job = submit(client, auth, {**BODY, "webhook_url": receiver.url}).json()
    wait_for(lambda: len(receiver.deliveries) >= 3)
    assert [status for _, _, status in receiver.deliveries] == [500, 500, 200]
    assert len({h["webhook-id"] for h, _, _ in receiver.deliveries}) == 1
    state = wait_for(
        lambda: (
            (w := client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["webhook"])["state"]
            == "delivered"
            and w
        )
    )
    assert state["attempts"] == 3 and state["last_status"] == 200


def test_a_duplicate_queue_delivery_runs_nothing_twice(client, jobs, auth, ai, receiver):
    job = submit(client, auth, {**BODY, "webhook_url": receiver.url}).json()
    finished(client, auth, job)
    wait_for(lambda: receiver.deliveries)
    jobs.deliver({"type": "job", "job_id": job["id"]})
    jobs.deliver({"type": "webhook", "job_id": job["id"]})
    assert ai.calls == 1 and len(receiver.deliveries) == 1


def test_a_failed_job_reports_a_stable_code_and_is_refunded(client, auth, ai, receiver, clock):
    ai.fail_next("5006: Error: bad input")
    job = submit(client, auth, {**BODY, "webhook_url": receiver.url}).json()
    done = finished(client, auth, job)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "upstream_invalid_input" and done["error"]["status"] == 400
    assert "result" not in done
    assert client.get("/v1/usage", headers=auth).json()["spent_usd"] == 0
    wait_for(lambda: receiver.deliveries)
    secret = client.get("/v1/webhooks/secret", headers=auth).json()["secret"]
    payload = verify(secret, receiver.deliveries[0][0], receiver.deliveries[0][1], now=clock())
    assert payload["type"] == "image.generation.failed"
    assert payload["data"]["error"]["code"] == "upstream_invalid_input"


def test_a_retryable_model_failure_is_retried_before_failing(client, auth, ai):
    ai.fail_next("3040: Capacity temporarily exceeded")
    job = submit(client, auth).json()
    done = finished(client, auth, job)
    assert done["status"] == "succeeded" and ai.calls == 1 and len(ai.inputs) == 2


def test_persistent_capacity_errors_fail_the_job_after_the_attempts(client, auth, ai):
    for _ in range(5):
        ai.fail_next("3040: Capacity temporarily exceeded")
    done = finished(client, auth, submit(client, auth).json())
    assert done["status"] == "failed" and done["error"]["code"] == "upstream_capacity"
    assert len(ai.inputs) == 3  # job_max_attempts


@pytest.mark.runtimes("local", reason=HOLDS_QUEUE)
def test_a_revoked_key_fails_its_queued_job(client, jobs, auth, admin):
    jobs.pause()  # nothing consumes until we say so
    job = submit(client, auth).json()
    key_id = client.get("/v1/usage", headers=auth).json()["key_id"]
    client.post(f"/v1/admin/keys/{key_id}/revoke", headers=admin)
    jobs.resume()
    jobs.drain()
    stored = jobs.record(job["id"])  # its key can no longer poll it
    assert stored["status"] == "failed" and stored["error"]["code"] == "revoked_api_key"
    assert stored["attempts"] == 1  # failed for good on its first delivery, not retried


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/h",
        "https://10.0.0.1/h",
        "https://localhost/h",
        "https://[::1]/h",
        "ftp://x.test/h",
        "https://user:pw@x.test/h",
        "https://printer.local/h",
    ],
)
@pytest.mark.settings(webhook_allow_loopback=False)
def test_webhook_urls_must_be_public_https(client, auth, url):
    r = client.post(
        "/v1/images/generations", json={**BODY, "webhook_url": url}, headers={**auth, **ASYNC}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_webhook_url"


def test_client_tokens_cannot_read_the_webhook_secret(client, auth):
    token = client.post("/v1/tokens", json={"subject": "u"}, headers=auth).json()["token"]
    r = client.get("/v1/webhooks/secret", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403


def test_a_rotated_out_key_cannot_read_the_new_webhook_secret(client, admin):
    """The new secret outlives the old key's grace period: from the rotation on, only the
    new key reads it, while the old key still generates."""
    made = client.post("/v1/admin/keys", json={"name": "rotating"}, headers=admin).json()
    old = {"Authorization": f"Bearer {made['key']}"}
    before = client.get("/v1/webhooks/secret", headers=old).json()["secret"]
    rotated = client.post(
        f"/v1/admin/keys/{made['id']}/rotate", json={"grace_seconds": 3600}, headers=admin
    )
    assert rotated.status_code == 201, rotated.text
    new = {"Authorization": f"Bearer {rotated.json()['key']}"}

    r = client.get("/v1/webhooks/secret", headers=old)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "rotated_api_key"
    assert before not in r.text
    assert client.get("/v1/usage", headers=old).status_code == 200  # still in its grace

    r = client.get("/v1/webhooks/secret", headers=new)
    assert r.status_code == 200, r.text
    assert r.json()["secret"] != before


# -- the receiver's helper ---------------------------------------------------------------------


SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def signed(body=b'{"type":"x"}', now=1_700_000_000, secret=SECRET):
    from fluxgate.jobs.webhooks import signed_headers

    return signed_headers([secret], "msg_1", body, now=now), body


def test_verify_accepts_a_valid_delivery():
    headers, body = signed()
    assert verify(SECRET, headers, body, now=1_700_000_010) == {"type": "x"}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),
        lambda h, b: ({**h, "webhook-id": "msg_2"}, b),
        lambda h, b: ({**h, "webhook-timestamp": "1700000001"}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
    ],
)
def test_verify_refuses_tampering(tamper):
    headers, body = tamper(*signed())
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers, body, now=1_700_000_000)


def test_verify_refuses_old_timestamps_and_other_secrets():
    headers, body = signed()
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers, body, now=1_700_000_000 + 301)
    with pytest.raises(WebhookVerificationError):
        verify("whsec_" + "A" * 32, headers, body, now=1_700_000_000)


def test_during_rotation_every_secret_signs():
    from fluxgate.jobs.webhooks import signed_headers

    old, new = SECRET, "whsec_" + "B" * 32
    headers = signed_headers([new, old], "m", b"{}", now=5)
    assert len(headers["webhook-signature"].split()) == 2
    assert verify(old, headers, b"{}", now=5) == {} == verify(new, headers, b"{}", now=5)
    assert json.loads(b"{}") == {}
