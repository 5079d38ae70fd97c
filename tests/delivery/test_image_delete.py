"""DELETE /v1/images/{id} and DELETE /v1/admin/images/{id}: an image deleted is gone from
every store (its object and variants, its record, the cache entry and its listing row) and
from every signed URL, the edge cache's copies included; and images older than
IMAGE_RETENTION_DAYS are deleted by themselves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from fluxgate.delivery.signing import UrlSigner
from fluxgate.local.objects_dir import DirectoryObjects
from fluxgate.local.runtime import LocalRuntime

from ..support.admin import new_key
from ..support.bodies import generate, generation
from ..support.polling import finished, wait_for
from ..support.runtimes import FAILS_STORE, MOVES_CLOCK
from ..support.servers import cli
from ..support.storage import FlakyObjects

pytestmark = pytest.mark.runtimes("local", "worker")

VARIANT = "256.webp"


def made(client: httpx.Client, auth: dict[str, str], prompt: str = "a paper crane") -> Any:
    """A fresh generation with a variant URL, its original and variant downloaded once
    (so that the variant is stored and, on the Worker, both are in the edge cache)."""
    r = generate(client, auth, generation(prompt, square=256, variants=[VARIANT]))
    assert r.status_code == 200 and r.headers["x-cache"] == "MISS", r.text
    body = r.json()
    for url in urls(body):
        assert client.get(url).status_code == 200
        wait_for(lambda url=url: in_edge_cache(client.get(url)))  # type: ignore[misc]
    return body


def in_edge_cache(download: httpx.Response) -> bool:
    """Whether a download came from the edge cache, where there is one (the Worker's:
    ``X-Edge-Cache``; the local runtime has none, so any download counts). The cache is
    written after the first download's answer: a deletion must reach its copy too."""
    assert download.status_code == 200
    return bool(download.headers.get("x-edge-cache", "HIT") == "HIT")


def urls(body: Any) -> list[str]:
    """The signed URLs of a generation: the original's and its variant's."""
    item = body["data"][0]
    return [item["url"], item["variants"][VARIANT]]


def delete(client: httpx.Client, auth: dict[str, str], image_id: str) -> httpx.Response:
    return client.delete(f"/v1/images/{image_id}", headers=auth)


def listed(client: httpx.Client, auth: dict[str, str]) -> list[str]:
    r = client.get("/v1/images", headers=auth)
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["data"]]


def stored_objects(storage: Any, body: Any) -> list[str]:
    """The object keys of a generation's original and variants still in the bucket."""
    sha = body["sha256"]
    return [*storage.object_keys(f"images/{sha}."), *storage.object_keys(f"variants/{sha}/")]


def cache_entry(body: Any) -> str:
    """The KV cache entry a generation was served from (its URL names it, ``c``)."""
    query = dict(parse_qsl(urlsplit(body["data"][0]["url"]).query))
    return f"cache:{query['c']}"


def kv_keys(storage: Any) -> set[str]:
    return {row["key"] for row in storage.kv_dump()}


def assert_gone(
    client: httpx.Client,
    auth: dict[str, str],
    storage: Any,
    body: Any,
    sign: Callable[[str], str] | None = None,
) -> None:
    """Nothing of the generation ``body`` is left: not its record, URLs, listing row,
    objects, record or cache entry in KV. ``sign``: the URLs' paths signed anew (when the
    ones the generation gave have expired; then the KV entries are not deleted but expired:
    no longer read, which the record's 404 and the cache's MISS show)."""
    r = client.get(f"/v1/images/{body['id']}", headers=auth)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    for url in urls(body):
        url = sign(urlsplit(url).path) if sign is not None else url
        r = client.get(url)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", url
    assert body["id"] not in listed(client, auth)
    assert stored_objects(storage, body) == []
    if sign is None:
        assert not {f"gen:{body['id']}", cache_entry(body)} & kv_keys(storage)


def test_the_owner_deletes_an_image_and_everything_that_pointed_at_it(
    client: httpx.Client, auth: dict[str, str], storage: Any
) -> None:
    body = made(client, auth)
    assert len(stored_objects(storage, body)) == 2  # the original and its variant
    assert {f"gen:{body['id']}", cache_entry(body)} <= kv_keys(storage)
    usage = client.get("/v1/usage", headers=auth).json()

    r = delete(client, auth, body["id"])

    assert r.status_code == 200, r.text
    assert r.json() == {"id": body["id"], "object": "image", "deleted": True}
    assert r.headers["cache-control"] == "no-store"
    assert_gone(client, auth, storage, body)
    after = client.get("/v1/usage", headers=auth).json()
    assert (after["spent_usd"], after["requests"]) == (usage["spent_usd"], usage["requests"])
    again = generate(client, auth, generation("a paper crane", square=256))
    assert again.headers["x-cache"] == "MISS"


@pytest.mark.settings(cors_allowed_origins="https://app.example.com")
def test_a_browser_app_may_delete(client: httpx.Client, auth: dict[str, str]) -> None:
    """A page on an allowed origin (with a client token, say) is let through the preflight
    of a DELETE."""
    asked = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "DELETE"}
    answer = client.options("/v1/images/img_" + "0" * 24, headers=asked)
    assert answer.status_code == 204
    methods = answer.headers["access-control-allow-methods"]
    assert "DELETE" in {m.strip() for m in methods.split(",")}


def test_deleting_twice_answers_404_the_second_time(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    body = made(client, auth)
    assert delete(client, auth, body["id"]).status_code == 200
    r = delete(client, auth, body["id"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_unknown_and_malformed_ids_are_not_found(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    for image_id in ("img_" + "0" * 24, "nope", "x" * 600):
        r = delete(client, auth, image_id)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_another_keys_image_is_not_found_and_stays(
    client: httpx.Client, auth: dict[str, str], storage: Any
) -> None:
    body = made(client, auth)
    other = new_key(client, "other")

    r = delete(client, other, body["id"])

    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get(f"/v1/images/{body['id']}", headers=auth).status_code == 200
    assert len(stored_objects(storage, body)) == 2
    assert all(client.get(url).status_code == 200 for url in urls(body))


@pytest.mark.settings(cache_scope="global")
def test_under_a_global_cache_the_bytes_belong_to_the_key_that_paid(
    client: httpx.Client, auth: dict[str, str], storage: Any
) -> None:
    """Another key served the image from the shared cache deletes its own record only;
    the key that made (and paid for) it deletes the bytes, for everyone."""
    body = made(client, auth)
    other = new_key(client, "other")
    hit = generate(client, other, generation("a paper crane", square=256, variants=[VARIANT]))
    assert hit.headers["x-cache"] == "HIT" and hit.json()["id"] != body["id"]

    assert delete(client, other, hit.json()["id"]).status_code == 200

    assert client.get(f"/v1/images/{hit.json()['id']}", headers=other).status_code == 404
    assert hit.json()["id"] not in listed(client, other)
    assert all(client.get(url).status_code == 200 for url in urls(body))
    assert len(stored_objects(storage, body)) == 2
    assert delete(client, auth, body["id"]).status_code == 200
    assert_gone(client, auth, storage, body)


def test_a_key_without_the_generate_scope_may_not_delete(
    client: httpx.Client, auth: dict[str, str], admin: dict[str, str]
) -> None:
    body = made(client, auth)
    reader = new_key(client, "reader", scopes=["images:read"])
    r = delete(client, reader, body["id"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"


def mint(client: httpx.Client, auth: dict[str, str], subject: str, **fields: Any) -> Any:
    r = client.post("/v1/tokens", json={"subject": subject, **fields}, headers=auth)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_a_client_token_deletes_its_own_end_users_images_only(
    client: httpx.Client, auth: dict[str, str], storage: Any
) -> None:
    alice, bob = mint(client, auth, "alice"), mint(client, auth, "bob")
    hers = made(client, alice, "alice's crane")

    assert delete(client, bob, hers["id"]).status_code == 404  # another end user's
    reader = mint(client, auth, "alice", scopes=["images:read"])
    assert delete(client, reader, hers["id"]).status_code == 403  # deleting is writing
    assert client.get(f"/v1/images/{hers['id']}", headers=alice).status_code == 200

    assert delete(client, alice, hers["id"]).status_code == 200
    assert_gone(client, alice, storage, hers)


def test_the_api_key_deletes_its_end_users_images(
    client: httpx.Client, auth: dict[str, str], storage: Any
) -> None:
    alice = mint(client, auth, "alice")
    hers = made(client, alice, "alice's crane")
    assert delete(client, auth, hers["id"]).status_code == 200
    assert_gone(client, alice, storage, hers)


def test_the_admin_deletes_any_keys_image_and_the_audit_log_says_so(
    client: httpx.Client,
    auth: dict[str, str],
    admin: dict[str, str],
    storage: Any,
    audit_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    body = made(client, auth)

    r = client.delete(f"/v1/admin/images/{body['id']}", headers=admin)

    assert r.status_code == 200 and r.json()["deleted"] is True
    assert_gone(client, auth, storage, body)
    line = next(line for line in audit_lines() if line["action"] == "image.delete")
    assert line["target"] == body["id"] and line["actor"] == "admin_token"
    assert line["owner"] == client.get("/v1/usage", headers=auth).json()["key_id"]
    again = client.delete(f"/v1/admin/images/{body['id']}", headers=admin)
    assert again.status_code == 404


def test_the_admin_route_is_for_the_admin_only(client: httpx.Client, auth: dict[str, str]) -> None:
    body = made(client, auth)
    r = client.delete(f"/v1/admin/images/{body['id']}", headers=auth)
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    assert client.get(f"/v1/images/{body['id']}", headers=auth).status_code == 200


def test_a_finished_job_still_shows_its_deleted_image_whose_url_is_gone(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    r = generate(client, auth, generation("a job's crane", square=256, **{"async": True}))
    assert r.status_code == 202, r.text
    job = finished(client, auth, r.json())
    image = job["result"]
    assert delete(client, auth, image["id"]).status_code == 200

    after = client.get(f"/v1/jobs/{job['id']}", headers=auth).json()

    assert after["status"] == "succeeded" and after["result"]["id"] == image["id"]
    assert client.get(after["result"]["data"][0]["url"]).status_code == 404


@pytest.mark.runtimes("local", reason=FAILS_STORE)
def test_a_failed_store_answers_503_and_a_retry_completes_the_deletion(
    client: httpx.Client, auth: dict[str, str], storage: Any, objects: FlakyObjects
) -> None:
    body = made(client, auth)
    objects.fail_deletes = True

    r = delete(client, auth, body["id"])

    assert r.status_code == 503 and r.json()["error"]["code"] == "deletion_incomplete"
    assert r.headers["retry-after"]
    assert client.get(f"/v1/images/{body['id']}", headers=auth).status_code == 200
    objects.fail_deletes = False
    assert delete(client, auth, body["id"]).status_code == 200
    assert_gone(client, auth, storage, body)


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
@pytest.mark.settings(image_retention_days=2)
def test_images_older_than_the_retention_are_swept(
    client: httpx.Client,
    auth: dict[str, str],
    storage: Any,
    clock: Any,
    signer: UrlSigner,
    local_runtime: LocalRuntime,
) -> None:
    old = made(client, auth)
    clock.advance(86400)
    young = made(client, auth, "a younger crane")
    clock.advance(86400 + 1)  # the first is past two days, the second is not

    sweeper = local_runtime.sweeper
    assert isinstance(client, TestClient) and sweeper is not None  # a retention: a sweep
    swept = client.portal.call(sweeper.sweep)

    assert swept.images == 1
    assert_gone(client, auth, storage, old, lambda path: f"{path}?{signer.sign(path, 2**31)}")
    assert client.get(f"/v1/images/{young['id']}", headers=auth).status_code == 200
    assert listed(client, auth) == [young["id"]]
    assert len(stored_objects(storage, young)) == 2
    again = generate(client, auth, generation("a paper crane", square=256))
    assert again.headers["x-cache"] == "MISS"


@pytest.mark.settings(image_retention_days=1)
def test_under_a_retention_a_young_image_is_served_listed_and_deletable(
    client: httpx.Client, auth: dict[str, str], storage: Any
) -> None:
    """What a retention changes for an image younger than it: nothing (on the Worker the
    catalog's Durable Objects read the setting too); it goes on deletion as always."""
    body = made(client, auth)
    assert client.get(f"/v1/images/{body['id']}", headers=auth).status_code == 200
    assert listed(client, auth) == [body["id"]]
    assert delete(client, auth, body["id"]).status_code == 200
    assert_gone(client, auth, storage, body)


def test_fluxgate_sweep_deletes_the_images_older_than_the_retention(tmp_path: Path) -> None:
    data = tmp_path / "data"
    objects = DirectoryObjects(data / "objects")
    now = int(time.time())
    old, young = f"images/{'a' * 64}.png", f"images/{'b' * 64}.png"
    for key, created in ((old, now - 3 * 86400), (young, now - 3600)):
        meta = {"created": str(created)}
        put = partial(objects.put, key, b"png", content_type="image/png", custom_metadata=meta)
        anyio.run(put)
    put = partial(
        objects.put,
        f"variants/{'a' * 64}/256.webp",
        b"webp",
        content_type="image/webp",
        custom_metadata={},
    )
    anyio.run(put)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXGATE_")}

    run = cli("sweep", "--data-dir", str(data), env={**env, "FLUXGATE_IMAGE_RETENTION_DAYS": "2"})

    assert run.returncode == 0, run.stderr
    assert "swept: 1 images" in run.stderr
    assert [info.key for info in anyio.run(objects.list, "")] == [young]
    off = cli("sweep", "--data-dir", str(data), env=env)
    assert off.returncode == 0 and "IMAGE_RETENTION_DAYS is not set" in off.stderr


@pytest.mark.settings(image_retention_days=1)
def test_the_local_server_sweeps_as_it_starts(
    make_runtime: Callable[..., LocalRuntime], objects: FlakyObjects, clock: Any
) -> None:
    key = f"images/{'c' * 64}.png"
    created = {"created": str(int(clock()) - 2 * 86400)}
    put = partial(objects.put, key, b"png", content_type="image/png", custom_metadata=created)
    anyio.run(put)
    runtime = make_runtime()

    async def serve_until_swept() -> bool:
        async with runtime.background_jobs():  # what `fluxgate serve` runs around the app
            for _ in range(500):
                if await objects.head(key) is None:
                    return True
                await anyio.sleep(0.01)
        return False

    assert anyio.run(serve_until_swept)


# -- what a deletion must not take from anyone else, or leave revalidatable -----------------


def test_identical_requests_of_two_keys_are_two_files_and_one_delete_takes_only_its_own(
    client, auth
):
    """The same prompt, size and seed draw the same pixels for two keys (and for one key's
    ``no-cache`` re-run): each generation's file names the generation it is, so each is its
    own object, and deleting one leaves the other whole."""
    other = new_key(client, "other tenant")
    ask = generation("a twin crane", square=256, seed=11)
    mine, theirs = generate(client, auth, ask).json(), generate(client, other, ask).json()
    rerun = generate(client, auth, ask, headers={"Cache-Control": "no-cache"}).json()
    assert len({mine["sha256"], theirs["sha256"], rerun["sha256"]}) == 3
    assert delete(client, other, theirs["id"]).status_code == 200
    assert client.get(mine["data"][0]["url"]).status_code == 200
    assert client.get(rerun["data"][0]["url"]).status_code == 200
    assert delete(client, auth, rerun["id"]).status_code == 200
    assert client.get(mine["data"][0]["url"]).status_code == 200


def test_a_deleted_image_is_not_revalidated(client, auth):
    """A client that kept an ETag does not get ``304 Not Modified`` for what was deleted:
    its copy is no longer the resource."""
    body = made(client, auth, "a crane to revalidate")
    tags = {url: client.get(url).headers["etag"] for url in urls(body)}
    for url, etag in tags.items():
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert delete(client, auth, body["id"]).status_code == 200
    for url, etag in tags.items():
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 404
