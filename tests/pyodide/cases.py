"""Cases run inside Pyodide by harness.mjs: Fluxgate's Workers adapters against real
(simulated) bindings. Each ``case_*`` coroutine is one test; an assertion error fails it.

The adapters get their bindings as the Worker does: from ``env`` as the Workers SDK wraps
it for an entrypoint (``worker_env``; each binding wrapped by its workerd class name).
Every case is written so that a wrong FFI conversion makes it fail: values are read back
through the raw JS binding (``env``, not through the adapter that wrote them), and results
are checked for Python types, not just truthiness.
"""

import hashlib
import json
import logging
import time
import traceback
from urllib.parse import parse_qsl, urlsplit

from _workerd_dispatch import call
from harness import ai, ctx, env, settle
from js import Object, Request, caches
from pyodide.ffi import JsProxy, to_js
from workers import WorkerEntrypoint

from fluxgate import FLUX_MODEL_ID
from fluxgate.delivery.files import edge_cache_url, object_path
from fluxgate.delivery.signing import UrlSigner, parse_signing_keys
from fluxgate.edge.bindings.ai import WorkersImageModel
from fluxgate.edge.bindings.kv import WorkersKV
from fluxgate.edge.bindings.r2 import WorkersR2
from fluxgate.imaging.formats import inspect_image
from fluxgate.local.placeholder import render_png
from fluxgate.model.params import ReferenceImage
from fluxgate.model.port import ModelInput
from fluxgate.model.upstream import UpstreamError
from fluxgate.store.ports import read_all

# env as an entrypoint (or a Durable Object) sees it: WorkerEntrypoint.__init__ wraps it.
worker_env = WorkerEntrypoint(ctx, env).env


def js_obj(value):
    return to_js(value, dict_converter=Object.fromEntries)


def unique(prefix):
    return f"{prefix}:{time.time_ns()}"


def reference(width, height, seed=1):
    data = render_png(width, height, hashlib.sha256(str(seed).encode()).digest())
    return ReferenceImage(data, inspect_image(data), hashlib.sha256(data).hexdigest())


async def raises(exc_type, awaitable):
    try:
        await awaitable
    except exc_type as exc:
        return exc
    raise AssertionError(f"expected {exc_type.__name__}")


# -- KV ---------------------------------------------------------------------------------


async def case_kv_get_of_a_missing_key_is_python_none():
    assert await WorkersKV(worker_env.KV).get(unique("missing")) is None


async def case_kv_text_round_trip_is_a_python_str():
    kv, key = WorkersKV(worker_env.KV), unique("text")
    await kv.put(key, "héllo ✓")
    value = await kv.get(key)
    assert type(value) is str and value == "héllo ✓", repr(value)
    assert await env.KV.get(key) == "héllo ✓"


async def case_kv_ttl_and_metadata_reach_kv_as_a_plain_object():
    kv, key = WorkersKV(worker_env.KV), unique("meta")
    before = time.time()
    await kv.put(key, "v", ttl=120, metadata={"owner": "key_1", "n": 2})
    listed = await env.KV.list(js_obj({"prefix": key}))
    entry = listed.keys[0]
    assert entry.metadata.to_py() == {"owner": "key_1", "n": 2}, entry.metadata
    assert before + 110 <= entry.expiration <= before + 130, entry.expiration


async def case_kv_enforces_the_minimum_ttl():
    exc = await raises(Exception, WorkersKV(worker_env.KV).put(unique("ttl"), "v", ttl=30))
    assert "60" in str(exc), str(exc)


async def case_kv_list_pages_with_a_cursor_and_metadata():
    kv, prefix = WorkersKV(worker_env.KV), unique("page") + ":"
    for i in range(5):
        await kv.put(f"{prefix}{i}", "v", metadata={"i": i})
    first = await kv.list(prefix, limit=2)
    assert [e.name for e in first.keys] == [f"{prefix}0", f"{prefix}1"]
    assert first.keys[0].metadata == {"i": 0} and type(first.keys[0].metadata) is dict
    assert first.complete is False and type(first.cursor) is str
    rest = await kv.list(prefix, cursor=first.cursor)
    assert [e.name for e in rest.keys] == [f"{prefix}{i}" for i in (2, 3, 4)]
    assert rest.complete is True and rest.cursor is None


async def case_kv_get_with_cache_ttl_passes_an_options_object():
    kv, key = WorkersKV(worker_env.KV), unique("hot")
    await kv.put(key, "v")
    assert await kv.get(key, cache_ttl=60) == "v"
    assert await kv.get(unique("cold"), cache_ttl=60) is None


async def case_kv_delete():
    kv, key = WorkersKV(worker_env.KV), unique("del")
    await kv.put(key, "v")
    await kv.delete(key)
    assert await kv.get(key) is None


async def case_sdk_wraps_the_bindings_as_in_production():
    from workers.rpc import _BindingWrapper, _DurableObjectNamespaceWrapper

    # The harness's doubles carry workerd's class names, so the adapters above get the SDK's
    # wrappers, not the raw objects (which would skip the conversions production has).
    for name in ("KV", "IMAGES", "AI", "RATE_LIMIT_STANDARD", "JOB_QUEUE"):
        assert type(getattr(worker_env, name)) is _BindingWrapper, name
    for name in ("BUDGETS", "COALESCER", "JOBS"):
        assert type(getattr(worker_env, name)) is _DurableObjectNamespaceWrapper, name
    assert worker_env.URL_SIGNING_KEYS == env.URL_SIGNING_KEYS
    kv, key = WorkersKV(worker_env.KV), unique("wrapped")
    await kv.put(key, "v", ttl=60, metadata={"a": "b"})
    assert await env.KV.get(key) == "v"
    assert (await kv.list(key)).keys[0].metadata == {"a": "b"}


# -- R2 ---------------------------------------------------------------------------------


async def case_r2_put_stores_the_bytes_and_both_kinds_of_metadata():
    r2, key = WorkersR2(worker_env.IMAGES), unique("images/put")
    data = bytes(range(256)) * 4
    info = await r2.put(key, data, content_type="image/png", custom_metadata={"seed": "7"})
    assert (info.key, info.size, info.content_type) == (key, 1024, "image/png"), info
    assert info.custom_metadata == {"seed": "7"} and type(info.etag) is str
    raw = await env.IMAGES.get(key)
    assert bytes((await raw.arrayBuffer()).to_bytes()) == data
    assert raw.httpMetadata.contentType == "image/png"
    assert raw.customMetadata.to_py() == {"seed": "7"}


async def case_r2_head_and_get_of_a_missing_key_are_none():
    r2 = WorkersR2(worker_env.IMAGES)
    assert await r2.head(unique("images/none")) is None
    assert await r2.get(unique("images/none")) is None
    assert await r2.exists(unique("images/none")) is False


async def case_r2_get_returns_python_bytes_and_info():
    r2, key = WorkersR2(worker_env.IMAGES), unique("images/get")
    data = b"\x89PNG" + b"\x00\xff" * 1000
    await r2.put(key, data, content_type="image/png", custom_metadata={})
    body = await r2.get(key)
    assert body is not None and body.info.size == len(data)
    assert await read_all(body) == data
    head = await r2.head(key)
    assert head.size == len(data) and head.content_type == "image/png"
    assert await r2.exists(key) is True


async def case_r2_list_follows_every_page_with_metadata() -> None:
    r2, prefix = WorkersR2(worker_env.IMAGES), unique("variants/list") + "/"
    for n in range(3):
        meta = {"n": str(n)}
        await r2.put(f"{prefix}{n}.webp", b"x", content_type="image/webp", custom_metadata=meta)
    beside = prefix.rstrip("/") + "x/other"  # shares the prefix's text, not its folder
    await r2.put(beside, b"x", content_type="text/plain", custom_metadata={})
    found = await r2.list(prefix)
    assert [info.key for info in found] == [f"{prefix}{n}.webp" for n in range(3)]
    assert [info.custom_metadata for info in found] == [{"n": str(n)} for n in range(3)]
    assert found[0].content_type == "image/webp"


async def case_r2_delete():
    r2, key = WorkersR2(worker_env.IMAGES), unique("images/delete")
    await r2.put(key, b"x", content_type="text/plain", custom_metadata={})
    await r2.delete(key)
    assert await r2.head(key) is None


# -- AI ---------------------------------------------------------------------------------


async def case_ai_sends_a_multipart_stream_with_its_boundary():
    model = WorkersImageModel(worker_env.AI)
    image = await model.generate(
        ModelInput(prompt="a fox", width=320, height=256, steps=4, seed=513, guidance=3.5)
    )
    assert (image.info.format, image.info.width, image.info.height) == ("png", 320, 256)
    call = ai.lastCall()
    assert "boundary=" in call.contentType
    fields = call.fields.to_py()
    assert fields == {
        "prompt": "a fox",
        "width": "320",
        "height": "256",
        "steps": "4",
        "seed": "513",
        "guidance": "3.5",
    }, fields
    assert ai.lastCall().model == FLUX_MODEL_ID


async def case_ai_klein_runs_its_own_model_without_steps():
    from fluxgate.model.family import FLUX_2_DEV, FLUX_2_KLEIN_9B

    model = WorkersImageModel(worker_env.AI)
    assert model.served_name(FLUX_2_KLEIN_9B) == FLUX_2_KLEIN_9B.id
    assert model.served_name(FLUX_2_DEV) == FLUX_MODEL_ID
    await model.generate(
        ModelInput(prompt="a fox", width=256, height=256, steps=4, seed=7, model=FLUX_2_KLEIN_9B)
    )
    call = ai.lastCall()
    assert call.model == FLUX_2_KLEIN_9B.id
    assert "steps" not in call.fields.to_py(), call.fields.to_py()


async def case_ai_reference_images_arrive_as_typed_blobs_with_their_bytes():
    refs = (reference(300, 200, 1), reference(64, 64, 2))
    await WorkersImageModel(worker_env.AI).generate(
        ModelInput(prompt="mix", width=512, height=512, steps=2, seed=1, references=refs)
    )
    files = ai.lastCall().files
    assert sorted(files.object_keys()) == ["input_image_0", "input_image_1"]
    first = files.input_image_0
    assert first.type == "image/png" and (first.width, first.height) == (300, 200)
    assert hashlib.sha256(bytes(first.bytes.to_py())).hexdigest() == refs[0].sha256


async def case_ai_errors_carry_the_workers_ai_code():
    ai.failNext(js_obj({"message": "3040: Capacity temporarily exceeded, please try again."}))
    exc = await raises(
        UpstreamError,
        WorkersImageModel(worker_env.AI).generate(
            ModelInput(prompt="x", width=512, height=512, steps=1, seed=1)
        ),
    )
    assert exc.code == 3040, (exc.code, str(exc))


async def case_ai_contract_violations_surface_as_5006():
    refs = tuple(reference(32, 32, i) for i in range(5))
    exc = await raises(
        UpstreamError,
        WorkersImageModel(worker_env.AI).generate(
            ModelInput(prompt="x", width=512, height=512, steps=1, seed=1, references=refs)
        ),
    )
    assert exc.code == 5006 and "input_image_4" in str(exc), str(exc)


async def case_ai_json_runner_sends_a_plain_object_to_the_binding():
    from fluxgate.edge.bindings.ai import WorkersAIRunner

    runner = WorkersAIRunner(worker_env.AI)
    exc = await raises(Exception, runner.run(FLUX_MODEL_ID, {"prompt": "x"}))
    assert "5006" in str(exc) and "multipart" in str(exc), str(exc)


# -- rate limiting and budgets ----------------------------------------------------------


async def case_rate_limiter_counts_per_key_through_the_binding():
    from fluxgate.edge.bindings.rate_limiting import WorkersRateLimiter

    limiter, key = WorkersRateLimiter(worker_env), unique("rl")
    decisions = [await limiter.hit("standard", 3, 60, key) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False], decisions
    assert decisions[-1].remaining is None and decisions[-1].reset == 60
    assert (await env.RATE_LIMIT_STANDARD.limit(js_obj({"key": key}))).success is False
    assert (await limiter.hit("standard", 3, 60, unique("rl-other"))).allowed is True


async def case_rate_limiter_without_its_binding_lets_requests_through():
    from fluxgate.edge.bindings.rate_limiting import WorkersRateLimiter

    decision = await WorkersRateLimiter(worker_env).hit("burst", 5, 10, "k")
    assert decision.allowed is True and decision.limit == 5


async def case_budget_object_reserves_exactly_under_concurrency():
    import asyncio

    from fluxgate.edge.bindings.ledger_object import WorkersLedger

    ledger, account = WorkersLedger(worker_env.BUDGETS), unique("key")
    results = await asyncio.gather(
        *[ledger.reserve(account, "2026-11-24", 7, 70) for _ in range(20)]
    )
    accepted = [r for r in results if r.accepted]
    assert len(accepted) == 10, [r.accepted for r in results]
    usage = await ledger.usage(account, "2026-11-24")
    assert (usage.micro_usd, usage.requests) == (70, 10) and type(usage.micro_usd) is int


async def case_budget_object_holds_settle_release_renew_and_lapse():
    import asyncio

    from fluxgate.edge.bindings.ledger_object import WorkersLedger

    ledger, account = WorkersLedger(worker_env.BUDGETS), unique("key")
    assert (await ledger.reserve(account, "d1", 10, 100, "req:kept", 60)).accepted
    assert await ledger.settle(account, "req:kept") is True
    assert (await ledger.reserve(account, "d1", 20, 100, "req:failed", 60)).accepted
    await ledger.release(account, "req:failed")
    assert (await ledger.reserve(account, "d1", 30, 100, "idem:retry", 60)).accepted
    assert (await ledger.reserve(account, "d1", 30, 100, "idem:retry", 60)).accepted  # taken over
    assert (await ledger.usage(account, "d1")).micro_usd == 40
    assert (await ledger.reserve(account, "d1", 5, 100, "req:dies", 0.05)).accepted
    await asyncio.sleep(0.2)
    assert (await ledger.usage(account, "d1")).micro_usd == 40  # the lapsed hold refunded


async def case_budget_object_refunds_and_keeps_accounts_and_days_apart():
    from fluxgate.edge.bindings.ledger_object import WorkersLedger

    ledger, account = WorkersLedger(worker_env.BUDGETS), unique("key")
    assert (await ledger.reserve(account, "d1", 50, 60)).accepted
    assert not (await ledger.reserve(account, "d1", 50, 60)).accepted
    await ledger.refund(account, "d1", 50)
    assert (await ledger.usage(account, "d1")).micro_usd == 0
    assert (await ledger.reserve(account, "d2", 60, 60)).accepted
    assert (await ledger.usage(unique("other"), "d1")).requests == 0


async def case_budget_object_reads_a_range_of_days_back():
    from fluxgate.edge.bindings.ledger_object import WorkersLedger

    ledger, account = WorkersLedger(worker_env.BUDGETS), unique("key")
    for day, micro in (("2026-11-20", 5), ("2026-11-22", 7), ("2026-11-22", 7), ("2026-12-01", 9)):
        assert (await ledger.reserve(account, day, micro, 1000)).accepted
    rows = await ledger.history(account, "2026-11-21", "2026-11-30")
    assert [(r.day, r.micro_usd, r.requests) for r in rows] == [("2026-11-22", 14, 2)], rows
    assert type(rows[0].micro_usd) is int and type(rows[0].day) is str
    assert await ledger.history(unique("other"), "2026-11-01", "2026-11-30") == []


async def case_usage_events_are_analytics_engine_data_points():
    from fluxgate.edge.bindings.analytics_engine import AnalyticsEngineEvents, usage_events_from_env
    from fluxgate.listings.usage_events import UsageEvent

    events = usage_events_from_env(worker_env)
    assert isinstance(events, AnalyticsEngineEvents)
    key = unique("key")
    event = UsageEvent(
        time=0.0,
        key_id=key,
        end_user=None,
        model="m",
        kind="sync",
        cache="HIT",
        generation_id="img_1",
        width=512,
        height=512,
        steps=4,
        reference_images=0,
        charged_micro_usd=0,
        estimated_micro_usd=820,
        duration_ms=1.5,
    )
    await events.record(event)
    [point] = [p for p in env.USAGE_EVENTS.points().to_py() if p["indexes"] == [key]]
    assert point["blobs"] == [key, "", "m", "sync", "HIT", "img_1"], point
    assert point["doubles"] == [0.0, 0.00082, 512.0, 512.0, 4.0, 0.0, 1.5], point
    assert point["dataset"] == "fluxgate_usage"


# -- the listings' catalog -----------------------------------------------------------------


async def case_catalog_object_pages_a_keys_rows_newest_first():
    from fluxgate.edge.bindings.catalog_object import WorkersCatalog
    from fluxgate.listings.catalog import IMAGE, JOB, Entry

    catalog, account = WorkersCatalog(worker_env.CATALOG), unique("key")
    for n in range(5):
        user = "u1" if n % 2 else None
        await catalog.put(
            Entry(IMAGE, f"img_{n}", account, user, 1_000 + n, 1_000 + n, None, {"n": n})
        )
    first = await catalog.page(account, IMAGE, None, 3, None)
    assert [e.summary["n"] for e in first.entries] == [4, 3, 2]
    assert first.next is not None and type(first.next.seq) is int
    assert type(first.next.created) is int and first.next.created == 1_002
    newest, odd = first.entries[0], first.entries[1]
    assert newest.user is None and newest.status is None and newest.id == "img_4"
    assert odd.user == "u1" and type(odd.created) is int and odd.account == account
    rest = await catalog.page(account, IMAGE, None, 3, first.next)
    assert [e.summary["n"] for e in rest.entries] == [1, 0] and rest.next is None
    theirs = await catalog.page(account, IMAGE, "u1", 10, None)
    assert [e.id for e in theirs.entries] == ["img_3", "img_1"]
    await catalog.put(Entry(JOB, "job_1", account, None, 1_000, 1_000, "queued", {}))
    done = {"image_id": "img_4", "error": None}
    await catalog.put(Entry(JOB, "job_1", account, None, 1_000, 1_001, "succeeded", done))
    await catalog.put(Entry(JOB, "job_1", account, None, 1_000, 1_002, "running", {}))  # late
    (job,) = (await catalog.page(account, JOB, None, 10, None)).entries
    assert job.status == "succeeded" and job.summary == done and job.updated == 1_001
    assert (await catalog.page(unique("other"), IMAGE, None, 10, None)).entries == []
    await catalog.delete(IMAGE, "img_4", unique("other"))  # another key's row: not touched
    await catalog.delete(IMAGE, "img_4", account)
    await catalog.delete(IMAGE, "img_4", account)  # again: nothing to do, no error
    left = await catalog.page(account, IMAGE, None, 10, None)
    assert [e.id for e in left.entries] == ["img_3", "img_2", "img_1", "img_0"]


# -- idempotency keys ----------------------------------------------------------------------


async def case_idempotency_object_starts_a_key_once_and_replays_its_answer():
    import asyncio

    from fluxgate.edge.bindings.answers_object import WorkersIdempotency, idempotency_from_env
    from fluxgate.store.answers import LEASE_SECONDS, Caps, Claim, StoredResponse

    store, account = idempotency_from_env(worker_env), unique("key")
    assert isinstance(store, WorkersIdempotency)
    assert idempotency_from_env(object()) is None
    now = time.time()  # a float crosses the RPC as a JS number
    caps = Caps(rows=100, bytes=10**7)
    claims = await asyncio.gather(
        *(store.claim(account, account, "k", "fp", f"t{n}", now, caps) for n in range(8))
    )
    assert sorted(c.state for c in claims) == ["running"] * 7 + ["started"], claims
    (winner,) = [n for n, c in enumerate(claims) if c.state == "started"]
    waiting = next(c for c in claims if c.state == "running")
    assert type(waiting.retry_after) is int and 1 <= waiting.retry_after <= LEASE_SECONDS
    assert await store.claim(account, account, "k", "other", "t", now, caps) == Claim("mismatch")
    answer = StoredResponse(200, '{"id":"img_1","é":"✓"}', {"X-Cache": "MISS"}, None)
    stored = await store.complete(account, account, "k", "not-mine", answer, now + 1)
    assert stored is False
    stored = await store.complete(account, account, "k", f"t{winner}", answer, now + 1)
    assert stored is True
    done = await store.claim(account, account, "k", "fp", "t-late", now + 2, caps)
    assert done == Claim("done", answer), done
    assert type(done.response.status) is int and type(done.response.headers) is dict
    # b64_json: an image key goes through; a released claim starts again
    spliced = StoredResponse(200, "{}", {}, "images/abc.png")
    assert (await store.claim(account, account, "b", "fp", "t1", now, caps)).state == "started"
    await store.release(account, account, "b", "t1")
    assert (await store.claim(account, account, "b", "fp", "t2", now, caps)).state == "started"
    assert await store.complete(account, account, "b", "t2", spliced, now)
    assert (await store.claim(account, account, "b", "fp", "t3", now, caps)).response == spliced
    # a crashed claim's lease runs out: taken over, and its holder can no longer store
    later = now + LEASE_SECONDS
    assert (await store.claim(account, account, "c", "fp", "old", now, caps)).state == "started"
    assert (await store.claim(account, account, "c", "fp", "new", later, caps)).state == "started"
    assert not await store.complete(account, account, "c", "old", answer, later)
    # another account is another object
    other = unique("other")
    assert (await store.claim(other, account, "k", "fp", "t", now, caps)).state == "started"
    # an account's caps are checked in its object: past them a new key is "full"
    capped = unique("capped")
    one = Caps(rows=1, bytes=10**7)
    assert (await store.claim(capped, capped, "k1", "fp", "t", now, one)).state == "started"
    full = await store.claim(capped, capped, "k2", "fp", "t", now + 5, one)
    assert full.state == "full" and type(full.retry_after) is int, full
    assert 1 <= full.retry_after <= 24 * 3600


# -- coalescing across isolates ------------------------------------------------------------


def coalescer():
    from fluxgate.edge.bindings.coalescer_object import DurableCoalescer

    return DurableCoalescer(
        worker_env.COALESCER,
        encode=lambda r: json.dumps(r),
        decode=lambda raw: json.loads(raw),
        wait_seconds=5,
    )


async def case_coalescer_object_shares_one_run_across_isolates():
    import asyncio

    key, runs = unique("ck"), []

    async def work():
        runs.append(1)
        await asyncio.sleep(0.05)
        return {"record": "r1"}

    # Two "isolates": two coalescers, one object per key.
    first, second = coalescer(), coalescer()
    results = await asyncio.gather(*[c.run(key, work) for c in (first, second, first, second)])
    assert len(runs) == 1, runs
    assert [r[0] for r in results] == [{"record": "r1"}] * 4
    assert sorted(r[1] for r in results) == [False, False, False, True]


async def case_coalescer_object_passes_a_failure_to_every_waiter():
    import asyncio

    from fluxgate.errors import ApiError

    key = unique("ck-fail")

    async def work():
        await asyncio.sleep(0.05)
        raise ApiError(503, "upstream_capacity", "out of capacity", headers={"Retry-After": "30"})

    results = await asyncio.gather(
        *[c.run(key, work) for c in (coalescer(), coalescer())], return_exceptions=True
    )
    assert all(isinstance(r, ApiError) and r.code == "upstream_capacity" for r in results)
    assert results[1].headers == {"Retry-After": "30"}
    later = await coalescer().run(key, lambda: asyncio.sleep(0, result="fresh"))
    assert later == ("fresh", True)  # nothing was kept


async def case_coalescer_object_never_hands_a_leaders_refusal_to_a_waiter():
    import asyncio

    from fluxgate.errors import ApiError
    from fluxgate.model.coalesce import NotShared

    key, calls = unique("ck-refusal"), []

    async def refused():
        calls.append("leader")
        await asyncio.sleep(0.05)
        raise NotShared(ApiError(429, "budget_exceeded", "spent 9.99 of 10.00 USD today"))

    async def own_work():
        calls.append("waiter")
        return {"record": "waiter's own"}

    # One "isolate" leads and is refused by its own budget; the other joins while it runs.
    leader = asyncio.ensure_future(coalescer().run(key, refused))
    await asyncio.sleep(0.01)
    waiter = await coalescer().run(key, own_work)
    outcome = await asyncio.gather(leader, return_exceptions=True)
    assert isinstance(outcome[0], ApiError) and outcome[0].code == "budget_exceeded"
    assert waiter == ({"record": "waiter's own"}, True), waiter  # it ran for itself
    assert calls == ["leader", "waiter"], calls


# -- async jobs: the job object, the queue, webhooks ---------------------------------------


def new_job(job_id):
    from fluxgate.jobs.table import QUEUED, Job

    return Job(
        job_id,
        "key_1",
        QUEUED,
        {"params": {"prompt": "x"}},
        None,
        None,
        "https://hooks.example/h",
        None,
        0,
        100,
        100,
    )


async def case_job_object_runs_the_state_machine_over_rpc():
    from fluxgate.edge.bindings.job_objects import WorkersJobStore
    from fluxgate.jobs.table import new_job_id

    store, job_id = WorkersJobStore(worker_env.JOBS), new_job_id()
    assert await store.get(job_id) is None
    await store.create(new_job(job_id))
    fetched = await store.get(job_id)
    assert fetched.status == "queued" and fetched.request == {"params": {"prompt": "x"}}
    first = await store.claim(job_id, 1000.0)
    assert first.outcome == "run" and first.job.attempts == 1 and type(first.lease) is str
    assert (await store.claim(job_id, 1001.0)).outcome == "busy"
    assert await store.succeed(job_id, "stale", {"r": 1}, 1002.0) is None
    done = await store.succeed(job_id, first.lease, {"record": {"id": "img"}}, 1003.0)
    assert done.status == "succeeded" and done.result == {"record": {"id": "img"}}
    assert (await store.claim(job_id, 1004.0)).outcome == "done"
    await store.record_webhook(job_id, {"state": "delivered", "attempts": 1}, 1005.0)
    assert (await store.get(job_id)).webhook == {"state": "delivered", "attempts": 1}


async def case_queue_producer_sends_json_with_a_delay():
    from harness import jobQueue

    from fluxgate.edge.bindings.job_objects import WorkersQueue

    queue = WorkersQueue(worker_env.JOB_QUEUE)
    await queue.send({"type": "job", "job_id": "job_x"})
    await queue.send({"type": "webhook", "job_id": "job_x"}, delay_seconds=30)
    sent = jobQueue.sent.to_py()[-2:]
    assert sent == [
        {"contentType": "json", "delaySeconds": None},
        {"contentType": "json", "delaySeconds": 30},
    ], sent
    # What the queue holds (the harness's Queue: the body as the consumer will get it).
    held = [(m.body.to_py(), m.visibleAt - m.timestamp.getTime()) for m in jobQueue.pending]
    assert held[-2:] == [
        ({"type": "job", "job_id": "job_x"}, 0),
        ({"type": "webhook", "job_id": "job_x"}, 30_000),
    ], held


async def case_queue_consumer_acks_and_retries_per_message():
    from harness import createBatch

    from fluxgate.edge.bindings.job_objects import consume
    from fluxgate.jobs.table import ACK, Disposition

    seen = []

    class Jobs:
        async def process(self, message, attempts):
            seen.append((message, attempts))
            if message["job_id"] == "boom":
                raise RuntimeError("bug")
            return ACK if message["job_id"] == "a" else Disposition(retry_in=7)

    class Consumer(WorkerEntrypoint):
        async def queue(self, batch, _env=None, _ctx=None):
            assert type(batch).__name__ == "_BindingWrapper", type(batch)  # the SDK's
            await consume(batch, Jobs())

    batch = createBatch(js_obj_list([{"type": "job", "job_id": k} for k in ("a", "b", "boom")]))
    # As workerd calls a class entrypoint's queue handler: strictly, (batch, env, ctx).
    await call(Consumer(ctx, env), "queue", batch, None, None)
    assert [m for m, _ in seen] == [{"type": "job", "job_id": k} for k in ("a", "b", "boom")]
    assert batch.outcome.to_py() == [
        {"id": "m0", "ack": True},
        {"id": "m1", "retry": 7},
        {"id": "m2", "retry": 5},
    ]


def js_obj_list(items):
    return to_js(items, dict_converter=Object.fromEntries)


async def case_fetch_poster_posts_to_a_real_http_server():
    from harness import receiver

    from fluxgate.edge.bindings.job_objects import FetchPoster

    body = b'{"type":"image.generation.succeeded"}'
    headers = {"content-type": "application/json", "webhook-id": "job_1.succeeded"}
    first = await FetchPoster().post(receiver.url, body, headers)
    second = await FetchPoster().post(receiver.url, body, headers)
    assert (first, second) == (503, 204)
    got = receiver.received.to_py()[-1]
    assert got["method"] == "POST" and got["body"] == body.decode()
    assert got["headers"]["webhook-id"] == "job_1.succeeded"


# -- the Worker entry and its signed-file route ------------------------------------------


def signer():
    return UrlSigner(parse_signing_keys(env.URL_SIGNING_KEYS))


async def stored_image():
    data = render_png(256, 256, hashlib.sha256(str(time.time_ns()).encode()).digest())
    sha = hashlib.sha256(data).hexdigest()
    key = f"images/{sha}.png"
    await WorkersR2(worker_env.IMAGES).put(key, data, content_type="image/png", custom_metadata={})
    return key, data, sha


def signed_url(key, ttl=300):
    path = object_path(key)
    return f"https://fluxgate.test{path}?{signer().sign(path, int(time.time()) + ttl)}"


async def worker_fetch(url, method="GET", headers=None, body=None):
    """Through the Worker's entry class (src/entry.py re-exports it), called as workerd
    calls ``fetch``: a new instance per event, the JS Request converted by the SDK."""
    from fluxgate.edge.front.worker import Default

    init = {"method": method, "headers": headers or {}}
    if body is not None:
        init["body"] = body
    js_request = Request.new(url, js_obj(init))
    response = await call(Default(ctx, env), "fetch", js_request, None, None)
    await settle()  # let waitUntil work (the edge-cache write) finish
    return response


async def case_file_route_streams_the_r2_body_into_a_js_response():
    key, data, sha = await stored_image()
    response = await worker_fetch(signed_url(key))
    assert isinstance(response, JsProxy) and response.constructor.name == "Response"
    assert response.status == 200
    assert response.headers.get("content-type") == "image/png"
    assert response.headers.get("content-length") == str(len(data))
    assert response.headers.get("etag") == f'"{sha}"'
    assert response.headers.get("cache-control").startswith("private, max-age=")
    assert response.body.constructor.name == "ReadableStream"
    assert (await response.arrayBuffer()).to_bytes() == data
    assert response.headers.get("x-edge-cache") == "MISS"


async def case_file_route_serves_repeat_downloads_from_the_edge_cache_by_object():
    key, data, sha = await stored_image()
    first = await worker_fetch(signed_url(key, ttl=300))
    assert (await first.arrayBuffer()).to_bytes() == data
    again = await worker_fetch(signed_url(key, ttl=600))  # another signature, same object
    assert again.status == 200 and again.headers.get("x-edge-cache") == "HIT"
    assert again.headers.get("cache-control").startswith("private, max-age=")
    assert again.headers.get("etag") == f'"{sha}"'
    assert (await again.arrayBuffer()).to_bytes() == data


async def case_file_route_serves_no_cached_copy_of_a_deleted_object() -> None:
    key, data, _ = await stored_image()
    first = await worker_fetch(signed_url(key))
    assert (await first.arrayBuffer()).to_bytes() == data  # now in the edge cache
    await WorkersR2(worker_env.IMAGES).delete(key)  # deleted: only the edge cache has it
    gone = await worker_fetch(signed_url(key))
    assert gone.status == 404 and not gone.headers.has("x-edge-cache")
    assert await caches.default.match(edge_cache_url("https://fluxgate.test", key)) is None


async def case_file_route_answers_range_requests_from_r2():
    key, data, _ = await stored_image()
    for header, start, end in (
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, len(data) - 1),
        ("bytes=-50", len(data) - 50, len(data) - 1),
    ):
        response = await worker_fetch(signed_url(key), headers={"Range": header})
        assert response.status == 206, (header, response.status)
        assert response.headers.get("content-range") == f"bytes {start}-{end}/{len(data)}"
        assert (await response.arrayBuffer()).to_bytes() == data[start : end + 1]
    past = await worker_fetch(signed_url(key), headers={"Range": f"bytes={len(data)}-"})
    assert past.status == 416 and past.headers.get("content-range") == f"bytes */{len(data)}"


async def case_file_route_drops_the_cache_entry_of_a_vanished_object():
    sha = hashlib.sha256(unique("gone").encode()).hexdigest()
    entry = hashlib.sha256(unique("entry").encode()).hexdigest()
    await WorkersKV(worker_env.KV).put(f"cache:{entry}", "{}")
    path = object_path(f"images/{sha}.png")
    query = signer().sign(path, int(time.time()) + 60, cache_key=entry)
    response = await worker_fetch(f"https://fluxgate.test{path}?{query}")
    assert response.status == 404
    assert await WorkersKV(worker_env.KV).get(f"cache:{entry}") is None


async def case_file_route_answers_if_none_match_with_304():
    key, _, sha = await stored_image()
    response = await worker_fetch(signed_url(key), headers={"If-None-Match": f'"{sha}"'})
    assert response.status == 304 and response.headers.get("etag") == f'"{sha}"'


async def case_file_route_head_has_length_and_no_body():
    key, data, _ = await stored_image()
    response = await worker_fetch(signed_url(key), method="HEAD")
    assert response.status == 200
    assert response.headers.get("content-length") == str(len(data))
    assert (await response.arrayBuffer()).byteLength == 0


async def case_file_route_refuses_tampered_and_expired_urls_with_json_403():
    key, _, _ = await stored_image()
    url = signed_url(key)
    query = dict(parse_qsl(urlsplit(url).query))
    tampered = url.replace(f"exp={query['exp']}", f"exp={int(query['exp']) + 1}")
    for bad, code in ((tampered, "invalid_signature"), (signed_url(key, ttl=-1), "url_expired")):
        response = await worker_fetch(bad)
        assert response.status == 403
        assert response.headers.get("content-type") == "application/json"
        assert json.loads(await response.text())["error"]["code"] == code


async def case_file_route_404_for_a_signed_url_to_a_missing_object():
    response = await worker_fetch(signed_url("images/" + "0" * 64 + ".png"))
    assert response.status == 404
    assert json.loads(await response.text())["error"]["code"] == "not_found"


async def case_file_route_refuses_other_methods_with_json_405():
    key, _, _ = await stored_image()
    response = await worker_fetch(signed_url(key), method="POST")
    assert response.status == 405 and response.headers.get("allow") == "GET, HEAD"
    assert response.headers.get("content-type") == "application/json"
    assert json.loads(await response.text())["error"]["code"] == "method_not_allowed"


class KeptRecords(logging.Handler):
    """The log records of one logger, kept for a case to read."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def case_a_fault_on_any_path_is_the_one_json_500_logged_once():
    """A fault no handler takes, in the app or in the file route, reaches the Worker's
    envelope: the local server's 500 body, with the request id, and one log line."""
    from fluxgate.edge.front import file_route, serve

    async def boom():
        raise RuntimeError("secret internal detail")

    async def download_boom(_request, _ports):
        await boom()

    serve.APP.add_api_route("/__cases/boom", boom)
    kept = {name: KeptRecords() for name in ("fluxgate.app", "asgi")}
    for name, handler in kept.items():
        logging.getLogger(name).addHandler(handler)
    download = file_route.download
    file_route.download = download_boom
    try:
        app_fault = await worker_fetch("https://fluxgate.test/__cases/boom")
        file_fault = await worker_fetch(signed_url("images/" + "1" * 64 + ".png"))
    finally:
        file_route.download = download
        for name, handler in kept.items():
            logging.getLogger(name).removeHandler(handler)
    for response in (app_fault, file_fault):
        assert response.status == 500, (response.status, await response.text())
        assert response.headers.get("content-type") == "application/json"
        assert json.loads(await response.text()) == {
            "error": {
                "code": "internal_error",
                "message": "Internal error.",
                "type": "api_error",
                "param": None,
                "request_id": response.headers.get("x-request-id"),
            }
        }
    lines = [(r.getMessage(), r.exc_info is not None) for r in kept["fluxgate.app"].records]
    assert lines == [("unhandled error", True)] * 2, lines
    assert [r.getMessage() for r in kept["asgi"].records] == [], "the SDK logged it again"


# -- runner -----------------------------------------------------------------------------


# -- AI disclosure: JsImage.splice and image_url (the marked file assembled in JS) ------


async def case_js_image_splice_marks_in_js_as_in_python():
    from fluxgate.delivery.disclosure import mark
    from fluxgate.edge.bindings.image_buffer import JsImage
    from fluxgate.edge.ffi import js_bytes
    from fluxgate.imaging.image_bytes import InProcessImage

    data = render_png(64, 48, hashlib.sha256(b"splice").digest())
    marked = await mark(JsImage(js_bytes(data)), "png", "gen/x", 1_700_000_000)
    expected = await mark(InProcessImage(data), "png", "gen/x", 1_700_000_000)
    assert type(marked) is JsImage and marked.array.constructor.name == "Uint8Array"
    assert marked.size == expected.size and marked.python_bytes() == expected.python_bytes()
    assert await marked.sha256() == hashlib.sha256(expected.python_bytes()).hexdigest()
    assert b"trainedAlgorithmicMedia" in marked.python_bytes()
    spliced = JsImage(js_bytes(b"abcdef")).splice([(4, 6), b"--", (0, 2), b""])
    assert spliced.python_bytes() == b"ef--ab"


async def case_js_image_url_is_a_js_object_that_survives_js_object():
    import base64

    from fluxgate.edge.bindings.image_buffer import JsImage
    from fluxgate.edge.ffi import js_bytes, js_object

    data = render_png(32, 32, hashlib.sha256(b"url").digest())
    url = JsImage(js_bytes(data)).image_url("image/png")
    assert isinstance(url, JsProxy) and url.constructor.name == "Object"
    assert list(Object.keys(url)) == ["url"]
    expected = "data:image/png;base64," + base64.b64encode(data).decode()
    assert url.url == expected
    # As the moderation call sends it: a Python dict holding it, converted by js_object.
    inputs = js_object({"messages": [{"content": [{"image_url": url}]}]})
    assert inputs.messages[0].content[0].image_url.url == expected


# -- the whole Worker: a real-size image never becomes a Python object -------------------

# Far below one copy of a real-size image (~1.2 MB at 1024x768) or of its base64 (~1.6 MB):
# had the miss read ``result.image``, decoded, hashed or copied it for R2 in Python, or a
# ``b64_json`` hit built its body in Python, Python's peak would hold at least one copy.
MOST_PYTHON_MAY_HOLD = 256 * 1024
REAL_SIZE = {"prompt": "a harbour at night, in the rain", "width": 1024, "height": 768}


async def worker_post(path, body, token):
    """A JSON POST through the Worker's entry, as :func:`worker_fetch` sends a GET; the JS
    ``Response``, its ``waitUntil`` work done."""
    from fluxgate.edge.front.worker import Default

    text = json.dumps(body)
    headers = {
        "content-type": "application/json",
        "content-length": str(len(text.encode())),  # as a request from the network has it
        "authorization": f"Bearer {token}",
    }
    init = {"method": "POST", "headers": headers, "body": text}
    request = Request.new(f"https://fluxgate.test{path}", js_obj(init))
    response = await call(Default(ctx, env), "fetch", request, None, None)
    await settle()
    return response


async def answer(response):
    """The status and JSON body of a JS ``Response`` (read here: the client's part)."""
    return int(response.status), json.loads(await response.text())


async def python_peak(request):
    """What a request made Python hold at its peak (``tracemalloc``), and its response;
    the body is read by the caller afterwards, as a client reads it, outside the count."""
    import tracemalloc

    tracemalloc.start()
    try:
        response = await request
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, response


async def case_a_real_size_miss_and_b64_json_hit_keep_the_image_out_of_python():
    import base64

    keys = await worker_post("/v1/admin/keys", {"name": unique("bytes")}, env.ADMIN_TOKEN)
    status, made = await answer(keys)
    assert status == 201, made
    ai.setRealistic(js_obj({"on": True}))
    try:
        body = {**REAL_SIZE, "seed": time.time_ns() % 2**31}
        peak, response = await python_peak(worker_post(PATH, body, made["key"]))
        status, miss = await answer(response)
        assert status == 200, miss
        assert miss["cached"] is False and miss["bytes"] > 1_000_000  # a realistic image
        stored = await WorkersR2(worker_env.IMAGES).get(f"images/{miss['sha256']}.png")
        data = await read_all(stored)
        assert hashlib.sha256(data).hexdigest() == miss["sha256"]  # hashed in JS, correctly
        assert peak < MOST_PYTHON_MAY_HOLD, f"Python held {peak} bytes during the miss"

        ask = {**body, "response_format": "b64_json"}
        peak, response = await python_peak(worker_post(PATH, ask, made["key"]))
        status, hit = await answer(response)
        assert status == 200 and hit["cached"] is True, hit
        image = base64.b64decode(hit["data"][0]["b64_json"])
        assert hashlib.sha256(image).hexdigest() == miss["sha256"]
        assert peak < MOST_PYTHON_MAY_HOLD, f"Python held {peak} bytes during the hit"
    finally:
        ai.setRealistic(js_obj({"on": False}))


PATH = "/v1/images/generations"


# -- the module walk from the Worker's entry ------------------------------------------------


async def case_a_json_generation_miss_and_its_download_enter_each_module_once_on_the_way_down():
    """From ``Default.fetch``: no module is entered again on its own chain of calls (no
    callback up), and no call climbs a layer (tests/support/module_walk.py), for a JSON
    generation miss and its signed download, a refused download and a body route of the
    app behind the ASGI bridge. The walks' counts are this case's note (``bench/walk.py``
    prints them)."""
    from module_walk import Walk

    boundary = ("_workerd_dispatch",)  # the calls workerd makes between isolates

    admin = {"Authorization": f"Bearer {env.ADMIN_TOKEN}", "Content-Type": "application/json"}
    made = await worker_fetch(
        "https://fluxgate.test/v1/admin/keys", "POST", admin, json.dumps({"name": "walk"})
    )
    assert made.status == 201, await made.text()
    secret = json.loads(await made.text())["key"]
    auth = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    async def generate(prompt):
        body = json.dumps({"prompt": prompt, "size": "512x512"})
        length = {"Content-Length": str(len(body))}  # as every client sends it to workerd
        url = "https://fluxgate.test/v1/images/generations"
        return await worker_fetch(url, "POST", {**auth, **length}, body)

    warm = await generate("a lighthouse at dawn")  # the isolate's first generation
    assert warm.status == 200, await warm.text()
    with Walk(boundary) as miss:
        answer = await generate("a lighthouse at dusk")
    assert answer.status == 200, await answer.text()
    assert answer.headers.get("x-cache") == "MISS"
    url = json.loads(await answer.text())["data"][0]["url"]
    first = await worker_fetch(url)
    assert first.status == 200, await first.text()
    with Walk(boundary) as download:
        got = await worker_fetch(url)
    assert got.status == 200
    with Walk(boundary) as refused:  # a refusal, answered by the route's front
        forged = await worker_fetch(url.replace("sig=", "sig=x"))
    assert forged.status == 403
    with Walk(boundary) as through_the_app:  # a body route of the FastAPI app, behind the bridge
        body = json.dumps({"name": "walked"})
        another = await worker_fetch("https://fluxgate.test/v1/admin/keys", "POST", admin, body)
    assert another.status == 201, await another.text()
    reports = []
    for name, walk in (
        ("JSON generation miss", miss),
        ("signed download", download),
        ("refused download", refused),
        ("admin key through the app", through_the_app),
    ):
        summary = walk.summary()
        reports.append(summary.report(name) + "\n" + summary.walk())
        assert not summary.re_entries and not summary.climbs, reports[-1]
    return "\n".join(reports)


async def run(only=()):
    results = []
    for name, case in [(n, f) for n, f in globals().items() if n.startswith("case_")]:
        if only and name not in only:
            continue
        started = time.monotonic()
        try:
            note = await case()
            results.append({"case": name, "ok": True})
            if isinstance(note, str):
                results[-1]["note"] = note
        except BaseException as exc:
            detail = "".join(traceback.format_exception(exc)[-6:])
            results.append({"case": name, "ok": False, "detail": detail})
        results[-1]["seconds"] = round(time.monotonic() - started, 3)
    return json.dumps(results)


# -- ID tokens: WebCrypto and fetch (fluxgate.edge.bindings.web_crypto) ----------------------

# Test vectors made once with `cryptography` (tests/support/oidc_issuer.py): the issuer's
# public keys and two tokens it signed (iat 2026-01-01, exp 2100-01-01).
OIDC_RSA_JWK = {
    "kty": "RSA",
    "n": (
        "p4sxM1bIwKI1UhF68obfIy8k3vJqXu4Xd5Bg0kVZq-cVlx4StuWKpooqt9EjdXAyxMot62jSsh3tZSb6"
        "jJy3_Xk_QFbOQ4FcMPR0sEybLAoIZrFS4wJLbH7iHuFY3Pruyr4yO0neAzvH72LrHfvgtkMUy6DxD5gO"
        "UYA7VM4XocAP4fGMv4FQTrYL9asPMcNqNbsps-GDOVYbK-aN3aM80EJjIPV_u3K19672PHrZ7knRK3zD"
        "3-FM_3HAvdag_hrCKVNDFIdzAdCaOY3w64MDgVN0emEWD6f6X8vBWkHEtWGmcWD046q4tzYj9cgdXmAo"
        "odKawqwEI6U72gQpVIvK1w"
    ),
    "e": "AQAB",
    "kid": "rsa-1",
    "alg": "RS256",
    "use": "sig",
}
OIDC_EC_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": "MLUXM7rLXz2wK5TFbcb-ezWThfWxZjWSmzAKii5v-wg",
    "y": "Hyg9bcq6VIY54ad8eRInAHBFxTbwa9LyoardlxhIeYI",
    "kid": "ec-1",
    "alg": "ES256",
    "use": "sig",
}
OIDC_RS256_TOKEN = (
    "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCIsICJraWQiOiAicnNhLTEifQ.eyJpc3MiOiAiaHR0c"
    "HM6Ly9pc3N1ZXIuZmx1eGdhdGUudGVzdCIsICJhdWQiOiAiZmx1eGdhdGUtcHlvZGlkZSIsICJzdWIiO"
    "iAidXNlci1weW9kaWRlIiwgImlhdCI6IDE3NjcyMjU2MDAsICJleHAiOiA0MTAyNDQ0ODAwfQ.axxlat"
    "Z0HNpTiEO61c65OQ3SJGda7wD7V8LNtExCAFirVtbN-blGVOJLuefTWR2BIpnukxe78BZS7Q_lvcTxIN"
    "BjLVdLal7K49jucMo42fHQkBXMvuyNqvJA4nKkfeMuQqVeG93LVaIv-dz2MASDcN76U-GQy47i86rM8Y"
    "WIFZOuiy4xp3ZBc7dsTt9tfA8VxeruNZ-QM44iX1ZeLTVCBIscp0em4KnJPuduWUZJlmpa9OpeXFZquO"
    "o19b4iE0DanY9pTW3jbwvtowSXFW3SMuJTpHJKG03W2qwbRMt-wWAOhNlNthPbq4jtbCNXKApUqZvJYR"
    "h7v6YUhRKSPc-4-A"
)
OIDC_ES256_TOKEN = (
    "eyJhbGciOiAiRVMyNTYiLCAidHlwIjogIkpXVCIsICJraWQiOiAiZWMtMSJ9.eyJpc3MiOiAiaHR0cHM"
    "6Ly9pc3N1ZXIuZmx1eGdhdGUudGVzdCIsICJhdWQiOiAiZmx1eGdhdGUtcHlvZGlkZSIsICJzdWIiOiA"
    "idXNlci1weW9kaWRlIiwgImlhdCI6IDE3NjcyMjU2MDAsICJleHAiOiA0MTAyNDQ0ODAwfQ.RCBGl0wl"
    "VZiDfMsRbx79xxwD2U4ogJNfWOKhlc1sy0N6cgKuZQHOZKH9PqVpVVmt02zt7g20VsXHXTjabxdYrA"
)


def oidc_signed(token):
    """(signing input, signature) of a compact JWS."""
    from fluxgate.access.id_tokens import b64url_decode

    head, _, signature = token.rpartition(".")
    return head.encode(), b64url_decode(signature)


def oidc_public(jwk):
    """What the core hands a verifier: the key's defining members only."""
    members = ("kty", "n", "e") if jwk["kty"] == "RSA" else ("kty", "crv", "x", "y")
    return {m: jwk[m] for m in members}


def flipped(data):
    return data[:10] + bytes([data[10] ^ 1]) + data[11:]


async def oidc_issuer_server():
    """A JWKS server in Node on 127.0.0.1: /jwks (max-age 900), /moved (a 302 to it), /big
    (a body over the cap), /streamed (one too, without a length), /streamed-small (a key set
    without a length); ``fetches`` counts the requests to /jwks."""
    from pyodide.code import run_js

    start = run_js(
        """(async (jwks) => {
          const http = process.getBuiltinModule("node:http");
          const state = { fetches: 0 };
          const server = http.createServer((req, res) => {
            if (req.url === "/jwks") {
              state.fetches += 1;
              res.writeHead(200, { "content-type": "application/json",
                                   "cache-control": "public, max-age=900" }).end(jwks);
            } else if (req.url === "/moved") {
              res.writeHead(302, { location: "/jwks" }).end();
            } else if (req.url === "/streamed-small") {
              res.writeHead(200, { "content-type": "application/json" });
              res.write('{"keys": ');
              res.end("[]}");
            } else if (req.url === "/streamed") {
              res.writeHead(200, { "content-type": "application/json" });
              res.write('{"keys": []');
              for (let i = 0; i < 40; i++) res.write(" ".repeat(8 * 1024));
              res.end("}");
            } else if (req.url === "/big") {
              res.writeHead(200, { "content-type": "application/json" })
                 .end('{"keys": []}' + " ".repeat(300 * 1024));
            } else res.writeHead(404).end();
          });
          await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
          state.url = `http://127.0.0.1:${server.address().port}`;
          state.close = () => server.close();
          return state;
        })"""
    )
    return await start(json.dumps({"keys": [OIDC_RSA_JWK, OIDC_EC_JWK]}))


async def case_web_crypto_verifies_rs256_and_es256_and_refuses_bad_signatures():
    from fluxgate.edge.bindings.web_crypto import WebCryptoSignatures

    verifier = WebCryptoSignatures()
    for alg, jwk, token in (
        ("RS256", OIDC_RSA_JWK, OIDC_RS256_TOKEN),
        ("ES256", OIDC_EC_JWK, OIDC_ES256_TOKEN),
    ):
        signing_input, signature = oidc_signed(token)
        key = oidc_public(jwk)
        verified = await verifier.verify(alg, key, signing_input, signature)
        assert verified is True, (alg, verified)
        again = await verifier.verify(alg, key, signing_input, signature)  # a memoised key
        assert again is True, alg
        assert await verifier.verify(alg, key, signing_input, flipped(signature)) is False, alg
        assert await verifier.verify(alg, key, flipped(signing_input), signature) is False, alg
        assert await verifier.verify(alg, key, signing_input, signature[:-1]) is False, alg
    # A key of another type than the algorithm is refused as unusable, not checked.
    signing_input, signature = oidc_signed(OIDC_ES256_TOKEN)
    await raises(
        ValueError, verifier.verify("ES256", oidc_public(OIDC_RSA_JWK), signing_input, signature)
    )
    await raises(
        ValueError, verifier.verify("HS256", oidc_public(OIDC_EC_JWK), signing_input, signature)
    )


async def case_id_tokens_verify_through_fetch_and_web_crypto_end_to_end():
    from fluxgate.access.id_tokens import (
        IdTokenVerifier,
        JwksCache,
        JwksUnavailable,
        TrustedIssuer,
    )
    from fluxgate.edge.bindings.web_crypto import FetchJwksFetcher, WebCryptoSignatures
    from fluxgate.errors import ApiError

    server = await oidc_issuer_server()
    try:
        fetcher = FetchJwksFetcher()
        got = await fetcher.get(f"{server.url}/jwks")
        assert got.status == 200 and got.max_age == 900, (got.status, got.max_age)
        assert type(got.body) is bytes and json.loads(got.body)["keys"][1]["kid"] == "ec-1"
        assert (await fetcher.get(f"{server.url}/moved")).status == 302  # not followed
        await raises(JwksUnavailable, fetcher.get(f"{server.url}/big"))
        # no Content-Length: read a chunk at a time, given up past the cap
        small = await fetcher.get(f"{server.url}/streamed-small")
        assert (small.status, small.body) == (200, b'{"keys": []}'), small
        await raises(JwksUnavailable, fetcher.get(f"{server.url}/streamed"))
        await raises(JwksUnavailable, fetcher.get("http://127.0.0.1:9/jwks"))

        cache = JwksCache(fetcher, time.time, allow_loopback=True)
        verifier = IdTokenVerifier(cache, WebCryptoSignatures(), time.time)
        trusted = TrustedIssuer(
            "https://issuer.fluxgate.test", ("fluxgate-pyodide",), f"{server.url}/jwks"
        )
        before = server.fetches
        for token, alg in ((OIDC_RS256_TOKEN, "RS256"), (OIDC_ES256_TOKEN, "ES256")):
            verified = await verifier.verify(token, [trusted])
            assert (verified.subject, verified.algorithm) == ("user-pyodide", alg)
            head, _, signature = token.rpartition(".")
            changed = "A" if signature[-6] != "A" else "B"
            forged = f"{head}.{signature[:-6]}{changed}{signature[-5:]}"
            refused = await raises(ApiError, verifier.verify(forged, [trusted]))
            assert refused.code == "id_token_signature_invalid", refused.code
        assert server.fetches - before == 1  # one fetch, then the cached key set
    finally:
        server.close()


async def case_a_binding_that_is_an_rpc_stub_is_used_as_it_is():
    """An RPC stub (a service binding) answers every property with a remote method: asked
    for the SDK wrapper's ``_binding``, it would hand back a stub whose every call fails.
    ``unwrap`` gives a JS object back as it is, and unwraps only the SDK's wrapper."""
    from pyodide.code import run_js

    from fluxgate.edge.ffi import unwrap

    stub = run_js(
        """new Proxy({}, { get: (_, name) => name === "then" ? undefined
            : (...args) => `called ${String(name)}(${args.length})` })"""
    )
    assert unwrap(stub) is stub
    assert unwrap(stub).run("model", {}) == "called run(2)"

    class Wrapper:  # the SDK's env wrapper holds the JS binding as ``_binding``
        _binding = stub

    assert unwrap(Wrapper()) is stub


# -- C2PA claim signing: WebCrypto (fluxgate.edge.bindings.c2pa_web_crypto) ------------------

# Made once with `cryptography` (tests/support/c2pa_chain.py): a P-256 leaf valid from
# 2026-01-01 to 2100-01-01 with its root after it, the leaf's key as PKCS#8 with and without
# its public key, another key without one, and cryptography's signature (its DER turned into
# raw r || s) over a message.
C2PA_KEY = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNa7YwnfNvmU8HkYr\n"
    "NCxqXekwyFGcmKXpmQ/h1z3qb6ShRANCAATRgnRBlnMtC1+biJ8PvoLyRM/0XNit\n"
    "90A6EGyXjdcwSkprC9TfjpM0MDK1zCDwoVUyYdqZ+8QIaHixYB20isBU\n"
    "-----END PRIVATE KEY-----\n"
)
C2PA_KEY_WITHOUT_PUBLIC_KEY = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MEECAQAwEwYHKoZIzj0CAQYIKoZIzj0DAQcEJzAlAgEBBCA1rtjCd82+ZTweRis0\n"
    "LGpd6TDIUZyYpemZD+HXPepvpA==\n"
    "-----END PRIVATE KEY-----\n"
)
C2PA_OTHER_KEY_WITHOUT_PUBLIC_KEY = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MEECAQAwEwYHKoZIzj0CAQYIKoZIzj0DAQcEJzAlAgEBBCAc28Xaw9muQtbz6qng\n"
    "mZHp4bBUBmpmDbl/TDnA6rUEtw==\n"
    "-----END PRIVATE KEY-----\n"
)
C2PA_OTHER_KEY = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgC5xUs3+ZmE1b85tJ\n"
    "JuGOCLXCzriYLQxWM+kA0FVsJQChRANCAAQphpVYBp5Te9wgDYFa/p4kI8PtJc8F\n"
    "/gNTLPDwLvXao0bwMGGv0wdZHKvqMsAIGdWTRRvsSTv4mKCE41kNLngg\n"
    "-----END PRIVATE KEY-----\n"
)
C2PA_CHAIN_AND_ROOT = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIB+zCCAaKgAwIBAgIUC6+esUUo2BSyJToFVdjcqg9mkpAwCgYIKoZIzj0EAwIw\n"
    "NjEbMBkGA1UEAwwSRmx1eGdhdGUgdGVzdCByb290MRcwFQYDVQQKDA5GbHV4Z2F0\n"
    "ZSB0ZXN0czAgFw0yNjAxMDEwMDAwMDBaGA8yMTAwMDEwMTAwMDAwMFowQDElMCMG\n"
    "A1UEAwwcRmx1eGdhdGUgUHlvZGlkZSB0ZXN0IHNpZ25lcjEXMBUGA1UECgwORmx1\n"
    "eGdhdGUgdGVzdHMwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATRgnRBlnMtC1+b\n"
    "iJ8PvoLyRM/0XNit90A6EGyXjdcwSkprC9TfjpM0MDK1zCDwoVUyYdqZ+8QIaHix\n"
    "YB20isBUo4GBMH8wDAYDVR0TAQH/BAIwADAdBgNVHQ4EFgQUz6APy3h3eIiRL9il\n"
    "Ta934cW3AOwwDgYDVR0PAQH/BAQDAgeAMB8GA1UdJQQYMBYGCCsGAQUFBwMEBgor\n"
    "BgEEAYPoXgIBMB8GA1UdIwQYMBaAFKuBj6Sc++5sYBtPd8/9Vo5wKJcHMAoGCCqG\n"
    "SM49BAMCA0cAMEQCIEFtVB6uzLVoaa9BdF0oateB/ctA5nWBN1yQZ59jbKxcAiAK\n"
    "U/AwtXQWjXrOb8+s+cXpnjYhMjv5EtLH+qZU6Kz7hg==\n"
    "-----END CERTIFICATE-----\n"
    "-----BEGIN CERTIFICATE-----\n"
    "MIIB0DCCAXegAwIBAgIUJMbFjpxz8g0zoT9Q+hfD2xnTc9AwCgYIKoZIzj0EAwIw\n"
    "NjEbMBkGA1UEAwwSRmx1eGdhdGUgdGVzdCByb290MRcwFQYDVQQKDA5GbHV4Z2F0\n"
    "ZSB0ZXN0czAeFw0yNTEyMzEwMDAwMDBaFw0zNTEyMzAwMDAwMDBaMDYxGzAZBgNV\n"
    "BAMMEkZsdXhnYXRlIHRlc3Qgcm9vdDEXMBUGA1UECgwORmx1eGdhdGUgdGVzdHMw\n"
    "WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASVF+3sZDxFR9G2YXcM4s9WDHJxrf1k\n"
    "TbZeEeNeSIunhgsxmAHO9HH6ggPX+xoRm3x4SsaKgsV9FfbtL764yaoUo2MwYTAP\n"
    "BgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQUq4GPpJz7\n"
    "7mxgG093z/1WjnAolwcwHwYDVR0jBBgwFoAUq4GPpJz77mxgG093z/1WjnAolwcw\n"
    "CgYIKoZIzj0EAwIDRwAwRAIgUVpzeLwgxc97xOp64o+10Iy2WyBWihnH/kvtS4j4\n"
    "Ct0CIDHwggAUjjz7+doG+oo9Xg/r95Hwr1nDaPsAdiKI27KL\n"
    "-----END CERTIFICATE-----\n"
)
C2PA_VECTOR_MESSAGE = b"Fluxgate: a claim signed with cryptography"
C2PA_VECTOR_SIGNATURE = bytes.fromhex(
    "63c85017540302d33a35f2fbd13db23a2ab68e2380bbe7b7e870c538dfd7abfc"
    "ba892f028bb4f85aa33764f9162b44904928fb3b414aa284b751e2586225f755"
)
C2PA_ES256 = {"name": "ECDSA", "hash": "SHA-256"}


def c2pa_env(values):
    """``env`` holding these secrets, as an entrypoint sees it."""
    return WorkerEntrypoint(ctx, js_obj(values)).env


async def case_c2pa_signer_signs_es256_in_web_crypto_as_raw_r_and_s():
    from js import crypto

    from fluxgate.edge.bindings.c2pa_web_crypto import claim_signer_from_env
    from fluxgate.edge.ffi import js_bytes
    from fluxgate.provenance.certificates import SigningChain

    secrets = {"C2PA_SIGNING_KEY": C2PA_KEY, "C2PA_CERTIFICATE_CHAIN": C2PA_CHAIN_AND_ROOT}
    signer = claim_signer_from_env(c2pa_env(secrets))
    leaf_spki = SigningChain.from_pem(C2PA_CHAIN_AND_ROOT, time.time()).leaf_spki
    assert len(signer.chain) == 1 and type(signer.chain[0]) is bytes  # x5chain: no root
    message = b"a COSE Sig_structure"
    signature = await signer.sign(message)
    assert type(signature) is bytes and len(signature) == 64, (type(signature), len(signature))
    assert await signer.sign(message) != signature  # ECDSA's nonce: a fresh key each time
    assert await signer.verify(message, signature) is True
    # Verified apart from the adapter, with the leaf's public key imported here.
    leaf = await crypto.subtle.importKey(
        "spki", js_bytes(leaf_spki), js_obj({"name": "ECDSA", "namedCurve": "P-256"}), False,
        to_js(["verify"]),
    )  # fmt: skip
    independent = await crypto.subtle.verify(
        js_obj(C2PA_ES256), leaf, js_bytes(signature), js_bytes(message)
    )
    assert independent is True
    # cryptography's signature, converted to r || s, is the same encoding.
    assert await signer.verify(C2PA_VECTOR_MESSAGE, C2PA_VECTOR_SIGNATURE) is True
    assert await signer.verify(C2PA_VECTOR_MESSAGE, flipped(C2PA_VECTOR_SIGNATURE)) is False
    assert await signer.verify(flipped(message), signature) is False
    assert await signer.verify(message, signature[:-1]) is False


async def case_c2pa_signer_proves_the_key_is_the_leafs_on_first_use():
    from fluxgate.edge.bindings.c2pa_web_crypto import WorkersClaimSigner
    from fluxgate.provenance.certificates import (
        SigningChain,
        SigningIdentityError,
        private_key_der,
    )

    chain = SigningChain.from_pem(C2PA_CHAIN_AND_ROOT, time.time())
    # No public key in the PKCS#8: nothing to compare until the key signs a challenge.
    right = WorkersClaimSigner(private_key_der(C2PA_KEY_WITHOUT_PUBLIC_KEY), chain)
    message = b"a COSE Sig_structure"
    assert await right.verify(message, await right.sign(message)) is True
    wrong = WorkersClaimSigner(private_key_der(C2PA_OTHER_KEY_WITHOUT_PUBLIC_KEY), chain)
    refused = await raises(SigningIdentityError, wrong.sign(message))
    assert "does not match the signing certificate" in str(refused), str(refused)
    # Made without importing anything: a key WebCrypto refuses is refused at first use,
    # by the name of WebCrypto's error only.
    unusable = WorkersClaimSigner(b"\x30\x03\x02\x01\x00", chain)
    refused = await raises(SigningIdentityError, unusable.sign(message))
    assert str(refused).startswith("WebCrypto refused the signing key: "), str(refused)


async def case_c2pa_signer_from_env_wants_both_secrets_or_neither():
    from fluxgate.edge.bindings.c2pa_web_crypto import claim_signer_from_env
    from fluxgate.provenance.certificates import CertificateProfileError, SigningIdentityError

    assert claim_signer_from_env(c2pa_env({})) is None
    for present, missing in (
        ({"C2PA_SIGNING_KEY": C2PA_KEY}, "C2PA_CERTIFICATE_CHAIN"),
        ({"C2PA_CERTIFICATE_CHAIN": C2PA_CHAIN_AND_ROOT}, "C2PA_SIGNING_KEY"),
    ):
        try:
            claim_signer_from_env(c2pa_env(present))
        except SigningIdentityError as exc:
            assert f"{missing} is not" in str(exc), str(exc)
        else:
            raise AssertionError(f"a signer without {missing}")
    # A key carrying its public key is matched against the leaf's as the secrets are read.
    other = {"C2PA_SIGNING_KEY": C2PA_OTHER_KEY, "C2PA_CERTIFICATE_CHAIN": C2PA_CHAIN_AND_ROOT}
    try:
        claim_signer_from_env(c2pa_env(other))
    except SigningIdentityError as exc:
        assert "C2PA_SIGNING_KEY does not match" in str(exc), str(exc)
    else:
        raise AssertionError("a key that is not the leaf's was accepted")
    secrets = {"C2PA_SIGNING_KEY": C2PA_KEY, "C2PA_CERTIFICATE_CHAIN": C2PA_CHAIN_AND_ROOT}
    after_expiry = 4102444800  # 2100-01-01, the leaf's notAfter
    try:
        claim_signer_from_env(c2pa_env(secrets), now=after_expiry)
    except CertificateProfileError as exc:
        assert str(exc).startswith("C2PA_CERTIFICATE_CHAIN: ") and "expired" in str(exc)
    else:
        raise AssertionError("an expired chain was accepted")
