"""Variants under a burst: one transformation per variant, whoever asks and however often.

A variant URL needs no API key, only its signature, so anyone holding one can fetch it
as often as they like. The first downloads of a variant share one transformation (billed
on Workers, CPU-seconds locally) and all get the same bytes. Counted on each runtime: in
process, by the transformer itself; on workerd, by the Worker's console, where the gateway
writes one ``transforming variants/<sha256>/<name>`` line per transformation (Miniflare's
Images binding counts nothing).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest

from fluxgate.delivery.variants import MAX_MAKING
from fluxgate.local import pillow_transform as transform

from ..support.bodies import generate, generation

pytestmark = pytest.mark.runtimes("local", "worker")

BURST = 50


def variant_url(client: Any, auth: dict[str, str], *names: str) -> tuple[str, list[str]]:
    """A fresh image asking for ``names``: its digest and the variants' paths (with query)."""
    r = generate(client, auth, generation("a kite over dunes", square=512, variants=list(names)))
    assert r.status_code == 200, r.text
    urls = r.json()["data"][0]["variants"]
    paths = [f"{urlsplit(urls[n]).path}?{urlsplit(urls[n]).query}" for n in names]
    return r.json()["sha256"], paths


def transformations(runtime: str, request: pytest.FixtureRequest) -> Callable[[str], int]:
    """How many times the variant stored under a key was made, on the runtime under test."""
    if runtime == "worker":
        stack = request.getfixturevalue("workerd")
        return lambda key: stack.log_since_reset().splitlines().count(f"transforming {key}")
    images = request.getfixturevalue("images")  # the transformer the local runtime uses
    return lambda _key: int(images.made)


async def burst(async_client: Any, path: str, count: int) -> list[Any]:
    async with async_client() as http:
        return list(await asyncio.gather(*[http.get(path) for _ in range(count)]))


@pytest.mark.anyio
async def test_a_burst_of_first_downloads_makes_one_transformation(
    client: Any,
    async_client: Any,
    auth: dict[str, str],
    runtime: str,
    request: pytest.FixtureRequest,
) -> None:
    made = transformations(runtime, request)
    sha, (path,) = variant_url(client, auth, "256.webp")
    responses = await burst(async_client, path, BURST)
    assert [r.status_code for r in responses] == [200] * BURST
    assert len({r.content for r in responses}) == 1
    assert responses[0].headers["content-type"] == "image/webp"
    assert made(f"variants/{sha}/256.webp") == 1


@pytest.mark.runtimes("local")
@pytest.mark.anyio
async def test_a_burst_on_a_failing_variant_makes_one_attempt(
    client: Any, async_client: Any, auth: dict[str, str], images: Any
) -> None:
    """The one attempt's ``502`` reaches every request of the burst, and is remembered."""
    _, (path,) = variant_url(client, auth, "512.jpeg")
    images.fail(1)
    responses = await burst(async_client, path, 20)
    assert {r.status_code for r in responses} == {502}
    assert {r.json()["error"]["code"] for r in responses} == {"variant_failed"}
    assert images.made == 1
    assert client.get(path).status_code == 502 and images.made == 1


DISTINCT = [f"{width}.{fmt}" for fmt in ("webp", "png", "jpeg") for width in (128, 256, 512, 1024)]


def hold_encodes(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, set[str], asyncio.Event]:
    """Pillow's encodes wait until ``release`` is set; ``threads``: the threads they ran
    on; ``started`` is set by the first."""
    release, threads, started = threading.Event(), set[str](), asyncio.Event()
    encode, loop = transform.encode_variant, asyncio.get_running_loop()

    def held(data: bytes, width: int, fmt: str) -> bytes:
        threads.add(threading.current_thread().name)
        loop.call_soon_threadsafe(started.set)
        release.wait(60)
        return encode(data, width, fmt)

    monkeypatch.setattr(transform, "encode_variant", held)
    return release, threads, started


@pytest.mark.runtimes("local")
@pytest.mark.anyio
async def test_encodes_never_hold_up_the_stores(
    client: Any,
    async_client: Any,
    auth: dict[str, str],
    images: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Locally, Pillow encodes on a bounded pool of its own: while every one of its threads
    is busy (held here), an authenticated request, which reads the SQLite stores on the
    default executor, is answered. The Worker has no threads: the Images binding encodes."""
    names = DISTINCT[:MAX_MAKING]  # more than the default executor's threads on 2 cores
    _, paths = variant_url(client, auth, *names)
    release, threads, started = hold_encodes(monkeypatch)
    async with async_client() as http:
        downloads = [asyncio.ensure_future(http.get(path)) for path in paths]
        with anyio.fail_after(30):  # a deadlock guard, not a measurement
            await started.wait()
            usage = await http.get("/v1/usage", headers=auth)
        release.set()
        answers = await asyncio.gather(*downloads)
    assert usage.status_code == 200
    assert [r.status_code for r in answers] == [200] * len(names)
    assert threads and all(name.startswith(transform.THREAD_PREFIX) for name in threads)
    assert len(threads) <= transform.ENCODE_THREADS


@pytest.mark.runtimes("local")
@pytest.mark.anyio
async def test_too_many_variants_at_once_is_503_with_retry_after(
    client: Any,
    async_client: Any,
    auth: dict[str, str],
    images: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At most ``MAX_MAKING`` variants are made at once per process (per isolate on
    Workers): past that a first download is refused at once, not queued holding its
    original in memory, and nothing is remembered against the variant."""
    names = DISTINCT[: MAX_MAKING + 2]
    _, paths = variant_url(client, auth, *names)
    release, _, started = hold_encodes(monkeypatch)
    async with async_client() as http:
        downloads = [asyncio.ensure_future(http.get(path)) for path in paths]
        with anyio.fail_after(30):  # a deadlock guard, not a measurement
            await started.wait()
            while sum(task.done() for task in downloads) < 2:
                await asyncio.wait(downloads, return_when=asyncio.FIRST_COMPLETED)
        refused = [task.result() for task in downloads if task.done()]
        release.set()
        answers = await asyncio.gather(*downloads)
        assert [r.status_code for r in refused] == [503, 503]
        assert {r.json()["error"]["code"] for r in refused} == {"variants_busy"}
        assert all(int(r.headers["retry-after"]) > 0 for r in refused)
        assert sorted(r.status_code for r in answers) == [200] * MAX_MAKING + [503, 503]
        retried = [await http.get(paths[answers.index(r)]) for r in refused]
    assert [r.status_code for r in retried] == [200, 200]
    assert images.made == MAX_MAKING + 2
