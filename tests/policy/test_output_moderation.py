"""Output moderation: the generated image is classified (Llama 4 Scout) before it is kept.

The done-criterion: a ``block`` tier never leaves a rejected image in the object store, in
KV (record or cache entry), in the listings, in a response, an idempotent replay or an
async job. Black-box tests run on both runtimes (the classifier double enforces the
model's input contract on each: ``tests/support/scout.py``,
``worker/local/ai_models.mjs``).
"""

import asyncio
import json
import uuid
from typing import Any

import pytest

from fluxgate.imaging.image_bytes import InProcessImage
from fluxgate.local.placeholder import (
    PLACEHOLDER_CLASSIFIER,
    InferenceUpstreamError,
    PlaceholderVisionAI,
    vision_image,
)
from fluxgate.policy.output_moderation import (
    FAILURE_MEMORY_SECONDS,
    OUTPUT_MODERATION_MODEL,
    OutputScreen,
    OutputVerdict,
    ScoutImageModerator,
    parse_scout_output,
    scout_inputs,
)
from fluxgate.policy.prompt_moderation import ModerationUnavailable
from fluxgate.store.records import GenerationRecord

from ..support.admin import new_key, put_policy
from ..support.bodies import generation
from ..support.image_files import image_bytes
from ..support.polling import finished
from ..support.runtimes import MOVES_CLOCK
from ..support.scout import FakeScoutAI

pytestmark = pytest.mark.runtimes("local", "worker")

BODY = generation("a lighthouse at dusk", square=256, steps=2)
UNSAFE = {"safe": False, "categories": ["S1"]}
GENERATIONS = "/v1/images/generations"


def output_moderation(client, mode, failure="fail_closed"):
    put_policy(
        client,
        tiers={"standard": {"output_moderation": mode, "output_moderation_failure": failure}},
    )


def kept(storage):
    """Every trace a generation leaves: objects, KV records and cache entries."""
    keys = [row["key"] for row in storage.kv_dump()]
    return {
        "objects": storage.object_keys("images/"),
        "records": [k for k in keys if k.startswith("gen:")],
        "cache": [k for k in keys if k.startswith("cache:")],
    }


NOTHING = {"objects": [], "records": [], "cache": []}


def listed(client, auth):
    return client.get("/v1/images", headers=auth).json()["data"]


def spent(client, auth):
    return client.get("/v1/usage", headers=auth).json()["spent_usd"]


# -- the miss path --------------------------------------------------------------------------


def test_off_by_default_no_call_and_no_verdict(client, auth, scout):
    r = client.post(GENERATIONS, json=BODY, headers=auth)
    assert r.status_code == 200 and r.json()["output_moderation"] is None
    assert scout.calls == 0


def test_policy_shows_the_settings(client, auth):
    limits = client.get("/v1/policy", headers=auth).json()["limits"]
    assert (limits["output_moderation"], limits["output_moderation_failure"]) == (
        "off",
        "fail_closed",
    )
    output_moderation(client, "block", "fail_open")
    limits = client.get("/v1/policy", headers=auth).json()["limits"]
    assert (limits["output_moderation"], limits["output_moderation_failure"]) == (
        "block",
        "fail_open",
    )


def test_an_unknown_setting_is_refused(client, admin):
    doc = {"version": 99, "tiers": {"standard": {"output_moderation": "maybe"}}}
    r = client.put("/v1/admin/policy", json=doc, headers=admin)
    assert r.status_code == 400


def test_flag_keeps_a_safe_image_and_says_who_checked_it(client, auth, scout):
    output_moderation(client, "flag")
    r = client.post(GENERATIONS, json=BODY, headers=auth)
    assert r.status_code == 200
    assert r.json()["output_moderation"] == {
        "verdict": "safe",
        "categories": [],
        "classifier": OUTPUT_MODERATION_MODEL,
    }
    # The classifier saw one image, as a data URI of the format the model answered.
    [seen] = scout.seen
    assert seen["model"] == OUTPUT_MODERATION_MODEL
    assert seen["format"] == r.json()["content_type"] and seen["size"] > 100


def test_flag_keeps_an_unsafe_image_and_records_the_verdict(client, auth, scout, storage):
    output_moderation(client, "flag")
    scout.verdicts = [{"safe": False, "categories": ["S1", "S10"]}]
    r = client.post(GENERATIONS, json=BODY, headers=auth)
    assert r.status_code == 200, r.text
    verdict = r.json()["output_moderation"]
    assert verdict["verdict"] == "flagged"
    assert verdict["categories"] == ["violent_crimes", "hate"]
    assert client.get(r.json()["data"][0]["url"]).status_code == 200
    by_id = client.get(f"/v1/images/{r.json()['id']}", headers=auth).json()
    assert by_id["output_moderation"] == verdict
    assert len(kept(storage)["objects"]) == 1
    hit = client.post(GENERATIONS, json=BODY, headers=auth)
    assert hit.headers["x-cache"] == "HIT" and hit.json()["output_moderation"] == verdict
    assert scout.calls == 1  # the hit inherits the verdict


def test_block_leaves_no_trace_of_a_rejected_image_but_charges(client, auth, scout, storage, ai):
    output_moderation(client, "block")
    scout.verdicts = [{"safe": False, "categories": ["S12"]}]
    r = client.post(GENERATIONS, json={**BODY, "response_format": "b64_json"}, headers=auth)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "output_rejected"
    assert (error["category"], error["categories"]) == ("sexual_content", ["sexual_content"])
    assert "b64_json" not in r.text and "data" not in r.json()
    assert kept(storage) == NOTHING
    assert listed(client, auth) == []
    assert ai.calls == 1 and spent(client, auth) > 0  # the model ran: the charge stands
    # Nothing was cached: the same request runs the model again (safe this time).
    again = client.post(GENERATIONS, json=BODY, headers=auth)
    assert again.status_code == 200 and again.headers["x-cache"] == "MISS"
    assert again.json()["output_moderation"]["verdict"] == "safe"
    assert ai.calls == 2


def test_block_serves_a_safe_image(client, auth, scout):
    output_moderation(client, "block")
    r = client.post(GENERATIONS, json=BODY, headers=auth)
    assert r.status_code == 200 and r.json()["output_moderation"]["verdict"] == "safe"


def test_a_rejection_is_audited_with_its_categories(client, auth, scout, audit_lines):
    output_moderation(client, "block")
    scout.verdicts = [UNSAFE]
    assert client.post(GENERATIONS, json=BODY, headers=auth).status_code == 422
    refusal = next(line for line in audit_lines() if line["action"] == "request.refused")
    assert refusal["reason"] == "output_rejected" and refusal["status"] == 422
    assert refusal["categories"] == ["violent_crimes"]
    assert "lighthouse" not in json.dumps(refusal)


@pytest.mark.parametrize("form", ["json_text", "text"])
def test_the_other_answer_forms_are_understood(client, auth, scout, form):
    output_moderation(client, "block")
    scout.form = form
    scout.verdicts = [UNSAFE]
    r = client.post(GENERATIONS, json=BODY, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["category"] == "violent_crimes"


# -- classifier outages ---------------------------------------------------------------------


def test_an_outage_fails_closed_refunds_and_keeps_nothing(client, auth, scout, storage, ai):
    output_moderation(client, "flag")
    scout.failures = ["3040: Capacity temporarily exceeded"]
    r = client.post(GENERATIONS, json=BODY, headers=auth)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "output_moderation_unavailable"
    assert int(r.headers["retry-after"]) > 0
    assert kept(storage) == NOTHING
    assert ai.calls == 1 and spent(client, auth) == 0  # our failure: refunded


def test_an_outage_fails_open_then_a_later_hit_is_classified_once(client, auth, scout, storage):
    output_moderation(client, "block", "fail_open")
    scout.failures = ["3007: timeout"]
    r = client.post(GENERATIONS, json=BODY, headers=auth)
    assert r.status_code == 200 and r.json()["output_moderation"] is None
    assert len(kept(storage)["objects"]) == 1
    # The classifier is back: the unchecked image is classified on its next hit, and the
    # verdict kept (the hit after that calls no classifier).
    hit = client.post(GENERATIONS, json=BODY, headers=auth)
    assert hit.headers["x-cache"] == "HIT" and hit.json()["output_moderation"]["verdict"] == "safe"
    assert client.post(GENERATIONS, json=BODY, headers=auth).json()["output_moderation"]
    assert scout.calls == 2
    by_id = client.get(f"/v1/images/{r.json()['id']}", headers=auth).json()
    assert by_id["output_moderation"]["verdict"] == "safe"


def test_unsafe_without_a_category_is_still_refused(client, auth, scout):
    """Llama Guard's text form may say ``unsafe`` and name nothing: refused all the same."""
    output_moderation(client, "block")
    scout.form = "text"
    scout.verdicts = [{"safe": False, "categories": []}]  # "unsafe" with no category
    r = client.post(GENERATIONS, json=BODY, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["categories"] == ["unspecified"]


# -- cache hits and coalesced waiters inherit the verdict -----------------------------------


def test_a_flagged_hit_is_refused_to_a_block_tier_and_stays_for_its_own(
    client, auth, scout, storage, ai
):
    output_moderation(client, "flag")
    scout.verdicts = [UNSAFE]
    first = client.post(GENERATIONS, json=BODY, headers=auth)
    assert first.json()["output_moderation"]["verdict"] == "flagged"
    output_moderation(client, "block")
    r = client.post(GENERATIONS, json={**BODY, "response_format": "b64_json"}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["category"] == "violent_crimes"
    assert "b64_json" not in r.text
    assert ai.calls == 1 and scout.calls == 1  # no new generation, no new classification
    assert len(kept(storage)["objects"]) == 1  # kept for the tier that made it


def test_an_unchecked_hit_is_classified_under_a_moderating_tier(client, auth, scout, ai, storage):
    first = client.post(GENERATIONS, json=BODY, headers=auth)
    assert first.json()["output_moderation"] is None
    output_moderation(client, "block")
    scout.verdicts = [UNSAFE]
    r = client.post(GENERATIONS, json=BODY, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["code"] == "output_rejected"
    assert scout.calls == 1 and ai.calls == 1
    # The verdict was kept: the next hit is refused without asking again.
    assert client.post(GENERATIONS, json=BODY, headers=auth).status_code == 422
    assert scout.calls == 1
    records = [json.loads(row["value"]) for row in storage.kv_dump() if row["key"] != "policy"]
    verdicts = [v.get("output_moderation") for v in records if isinstance(v, dict)]
    assert {"verdict": "flagged", "categories": ["violent_crimes"]}.items() <= next(
        v for v in verdicts if v
    ).items()


def test_old_records_without_the_field_stay_readable():
    old = {
        "id": "img_" + "0" * 24,
        "owner": "key_x",
        "created": 1,
        "model": "@cf/black-forest-labs/flux-2-dev",
        "prompt_sha256": "0" * 64,
        "width": 256,
        "height": 256,
        "steps": 2,
        "guidance": None,
        "seed": 1,
        "object_key": "images/x.png",
        "content_type": "image/png",
        "bytes": 10,
        "sha256": "0" * 64,
    }
    assert GenerationRecord.from_json(json.dumps(old)).output_moderation is None


@pytest.mark.anyio
async def test_coalesced_waiters_of_a_blocked_leader_get_the_422_uncharged(
    client, async_client, ai, scout, auth, storage
):
    output_moderation(client, "block")
    scout.verdicts = [UNSAFE]
    ai.latency = 1.0  # all eight join the first call, even on a busy machine
    async with async_client() as http:
        responses = await asyncio.gather(
            *[http.post(GENERATIONS, json=BODY, headers=auth) for _ in range(8)]
        )
    assert {r.status_code for r in responses} == {422}
    assert {r.json()["error"]["category"] for r in responses} == {"violent_crimes"}
    assert ai.calls == 1 and scout.calls == 1
    assert kept(storage) == NOTHING
    usage = client.get("/v1/usage", headers=auth).json()
    assert usage["requests"] == 1 and usage["spent_usd"] > 0  # charged once, to the leader


@pytest.mark.settings(cache_scope="global")
@pytest.mark.anyio
async def test_waiters_who_may_keep_a_refused_image_share_one_new_generation(
    client, async_client, ai, scout
):
    """A shared cache: a blocking key leads and is refused; the flagging keys waiting on it
    elect a leader among themselves: one more model call for all of them, not one each."""
    blocking = new_key(client, "blocks", overrides={"output_moderation": "block"})
    flagging = [
        new_key(client, f"flags-{i}", overrides={"output_moderation": "flag"}) for i in range(4)
    ]
    scout.verdicts = [UNSAFE]  # the first image; the second is safe
    ai.latency = 1.5  # the leader is still at the model when the others join, even when busy
    async with async_client() as http:
        lead = asyncio.ensure_future(http.post(GENERATIONS, json=BODY, headers=blocking))
        await asyncio.sleep(0.5)
        waiters = await asyncio.gather(
            *[http.post(GENERATIONS, json=BODY, headers=auth) for auth in flagging]
        )
        refused = await lead
    assert refused.status_code == 422
    assert {r.status_code for r in waiters} == {200}
    assert len({r.json()["sha256"] for r in waiters}) == 1
    assert ai.calls == 2 and scout.calls == 2


# -- one classification per image: bursts of hits, and outages ------------------------------


def unchecked_image(client: Any, auth: dict[str, str]) -> None:
    """A kept image no classifier has seen (made under ``off``), then a moderating tier."""
    first = client.post(GENERATIONS, json=BODY, headers=auth)
    assert first.status_code == 200 and first.json()["output_moderation"] is None


async def hits(async_client: Any, auth: dict[str, str], count: int) -> list[Any]:
    async with async_client() as http:
        return list(
            await asyncio.gather(
                *[http.post(GENERATIONS, json=BODY, headers=auth) for _ in range(count)]
            )
        )


@pytest.mark.anyio
async def test_a_burst_of_hits_on_an_unchecked_image_is_classified_once(
    client: Any, async_client: Any, auth: dict[str, str], scout: Any, ai: Any
) -> None:
    unchecked_image(client, auth)
    output_moderation(client, "flag")
    responses = await hits(async_client, auth, 30)
    assert {r.status_code for r in responses} == {200}
    assert {r.headers["x-cache"] for r in responses} == {"HIT"}
    assert {r.json()["output_moderation"]["verdict"] for r in responses} == {"safe"}
    assert scout.calls == 1 and ai.calls == 1


@pytest.mark.anyio
async def test_an_outage_under_a_burst_is_one_call_and_is_remembered(
    client: Any, async_client: Any, auth: dict[str, str], scout: Any
) -> None:
    """Failing closed: every hit of the burst gets the 503 of one failed call, and the hits
    after it get it at once, for a while, without calling again."""
    unchecked_image(client, auth)
    output_moderation(client, "block")
    scout.failures = ["3040: Capacity temporarily exceeded"] * 40
    responses = await hits(async_client, auth, 30)
    assert {r.status_code for r in responses} == {503}
    assert {r.json()["error"]["code"] for r in responses} == {"output_moderation_unavailable"}
    assert scout.calls == 1
    later = [client.post(GENERATIONS, json=BODY, headers=auth) for _ in range(3)]
    assert {r.status_code for r in later} == {503} and scout.calls == 1


def test_failing_open_an_outage_is_not_asked_again_on_every_hit(
    client: Any, auth: dict[str, str], scout: Any
) -> None:
    unchecked_image(client, auth)
    output_moderation(client, "flag", "fail_open")
    scout.failures = ["3007: timeout"] * 5
    later = [client.post(GENERATIONS, json=BODY, headers=auth) for _ in range(5)]
    assert {r.status_code for r in later} == {200}
    assert {str(r.json()["output_moderation"]) for r in later} == {"None"}
    assert scout.calls == 1


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
def test_a_remembered_failure_is_tried_again_after_a_while(
    client: Any, auth: dict[str, str], scout: Any, clock: Any
) -> None:
    unchecked_image(client, auth)
    output_moderation(client, "flag", "fail_open")
    scout.failures = ["3007: timeout"]
    assert client.post(GENERATIONS, json=BODY, headers=auth).json()["output_moderation"] is None
    clock.advance(FAILURE_MEMORY_SECONDS - 1)  # the classifier is back, the failure remembered
    assert client.post(GENERATIONS, json=BODY, headers=auth).json()["output_moderation"] is None
    assert scout.calls == 1
    clock.advance(2)
    r = client.post(GENERATIONS, json=BODY, headers=auth)
    assert r.json()["output_moderation"]["verdict"] == "safe"
    assert scout.calls == 2


# -- idempotency and async jobs -------------------------------------------------------------


def test_an_idempotent_retry_replays_the_rejection(client, auth, ai, scout, storage):
    output_moderation(client, "block")
    scout.verdicts = [UNSAFE]
    headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}
    first = client.post(GENERATIONS, json=BODY, headers=headers)
    again = client.post(GENERATIONS, json=BODY, headers=headers)
    assert first.status_code == again.status_code == 422
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["error"]["code"] == "output_rejected"
    assert ai.calls == 1 and scout.calls == 1
    assert kept(storage) == NOTHING


def test_a_blocked_async_job_fails_uncached_and_charged(client, auth, ai, scout, storage):
    output_moderation(client, "block")
    scout.verdicts = [UNSAFE]
    r = client.post(GENERATIONS, json={**BODY, "async": True}, headers=auth)
    assert r.status_code == 202
    job = finished(client, auth, r.json())
    assert job["status"] == "failed" and "result" not in job
    error = job["error"]
    assert (error["status"], error["code"]) == (422, "output_rejected")
    assert error["categories"] == ["violent_crimes"]
    assert ai.calls == 1 and scout.calls == 1  # not retried
    assert kept(storage) == NOTHING
    assert listed(client, auth) == []
    assert spent(client, auth) > 0  # the model ran: the reservation is kept


def test_an_async_submission_hitting_a_flagged_image_is_refused(client, auth, scout, ai):
    output_moderation(client, "flag")
    scout.verdicts = [UNSAFE]
    assert client.post(GENERATIONS, json=BODY, headers=auth).status_code == 200
    output_moderation(client, "block")
    r = client.post(GENERATIONS, json={**BODY, "async": True}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["code"] == "output_rejected"
    assert ai.calls == 1


# -- the classifier's contract, in process --------------------------------------------------


PNG = image_bytes("PNG", 64, 48)


@pytest.mark.anyio
async def test_the_moderator_sends_what_the_model_takes():
    double = FakeScoutAI()
    moderator = ScoutImageModerator(double)
    assert await moderator.classify(InProcessImage(PNG), "image/png") == OutputVerdict(True)
    assert double.seen[0]["format"] == "image/png" and double.seen[0]["size"] == len(PNG)
    inputs = scout_inputs(InProcessImage(PNG).image_url("image/png"))
    assert inputs["temperature"] == 0
    assert inputs["response_format"]["type"] == "json_schema"
    assert "S14" not in json.dumps(inputs["response_format"])


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://example.com/a.png", "HTTP URL will not be accepted"),
        (
            "data:image/jpeg;base64," + InProcessImage(PNG).image_url("image/png")["url"][22:],
            "holds",
        ),
        ("data:image/gif;base64,R0lGODlh", "base64 image/png"),
        ("data:image/png;base64,!!!!", "not a readable image"),
    ],
)
def test_the_double_refuses_what_the_model_refuses(url, why):
    inputs = scout_inputs({"url": url})
    with pytest.raises(InferenceUpstreamError, match=f"5006: .*{why}"):
        vision_image(inputs)


def test_the_double_wants_one_image_and_a_response_format():
    good = scout_inputs(InProcessImage(PNG).image_url("image/png"))
    with pytest.raises(InferenceUpstreamError, match="response_format"):
        vision_image({k: v for k, v in good.items() if k != "response_format"})
    user = good["messages"][1]
    twice = {**user, "content": [*user["content"], user["content"][1]]}
    with pytest.raises(InferenceUpstreamError, match="exactly one image_url"):
        vision_image({**good, "messages": [good["messages"][0], twice]})


@pytest.mark.anyio
async def test_an_upstream_error_is_an_outage():
    double = FakeScoutAI()
    double.failures = ["3040: Capacity temporarily exceeded"]
    with pytest.raises(ModerationUnavailable):
        await ScoutImageModerator(double).classify(InProcessImage(PNG), "image/png")
    with pytest.raises(ModerationUnavailable):  # a format the model does not take
        await ScoutImageModerator(FakeScoutAI()).classify(InProcessImage(b"GIF89a"), "image/gif")


@pytest.mark.anyio
async def test_the_offline_placeholder_names_itself_and_checks_the_contract():
    moderator = ScoutImageModerator(PlaceholderVisionAI(), name=PLACEHOLDER_CLASSIFIER)
    verdict = await moderator.classify(InProcessImage(PNG), "image/png")
    assert verdict.recorded(moderator.name)["classifier"] == "placeholder/image-classifier"
    with pytest.raises(ModerationUnavailable):  # the bytes are not the format named
        await moderator.classify(InProcessImage(PNG), "image/webp")


@pytest.mark.parametrize(
    ("output", "verdict"),
    [
        ({"response": {"safe": True, "categories": []}}, OutputVerdict(True)),
        ({"response": {"safe": False, "categories": ["s3"]}}, OutputVerdict(False, ("S3",))),
        ({"response": '{"safe": false, "categories": ["S1"]}'}, OutputVerdict(False, ("S1",))),
        ({"response": '```json\n{"safe": true, "categories": []}\n```'}, OutputVerdict(True)),
        ({"response": "safe"}, OutputVerdict(True)),
        ({"response": "unsafe\nS1,S9"}, OutputVerdict(False, ("S1", "S9"))),
        ({"response": {"safe": False, "categories": []}}, OutputVerdict(False, ("unspecified",))),
        # contradictions and cut-off answers are read on the unsafe side, never passed
        ({"response": {"safe": True, "categories": ["S12"]}}, OutputVerdict(False, ("S12",))),
        (
            {"response": '{"safe": false, "categories": ["S1", "S2'},
            OutputVerdict(False, ("S1", "S2")),
        ),
        ({"response": '{"safe":false,'}, OutputVerdict(False, ("unspecified",))),
    ],
)
def test_scout_output_forms(output, verdict):
    assert parse_scout_output(output) == verdict


@pytest.mark.parametrize(
    "output",
    [{}, {"response": ""}, {"response": "maybe"}, None, {"response": {"safe": "no"}}],
)
def test_unreadable_scout_output_is_an_outage(output):
    with pytest.raises(ModerationUnavailable):
        parse_scout_output(output)


def test_verdicts_name_their_categories():
    recorded = OutputVerdict(False, ("S4", "S12")).recorded(OUTPUT_MODERATION_MODEL)
    assert recorded == {
        "verdict": "flagged",
        "categories": ["child_sexual_exploitation", "sexual_content"],
        "classifier": OUTPUT_MODERATION_MODEL,
    }


def test_a_placeholder_verdict_does_not_stand_before_a_real_classifier():
    """A data directory used offline, then with credentials: what the placeholder called
    safe is classified again by the real model; a real verdict stands everywhere."""
    by_placeholder = OutputVerdict(True).recorded(PLACEHOLDER_CLASSIFIER)
    by_model = OutputVerdict(True).recorded(OUTPUT_MODERATION_MODEL)
    real = OutputScreen(ScoutImageModerator(FakeScoutAI()))
    offline = OutputScreen(ScoutImageModerator(PlaceholderVisionAI(), name=PLACEHOLDER_CLASSIFIER))
    assert not real.stands(by_placeholder) and real.stands(by_model)
    assert offline.stands(by_placeholder) and offline.stands(by_model)
    assert not real.stands(None) and not offline.stands(None)


def test_listings_show_each_images_verdict(client, auth, scout):
    """``GET /v1/images`` carries the verdict, kept current when a hit classifies an image
    made unchecked."""
    unchecked = client.post(GENERATIONS, json=BODY, headers=auth).json()
    assert [item["output_moderation"] for item in listed(client, auth)] == [None]
    output_moderation(client, "flag")
    scout.verdicts = [UNSAFE]
    hit = client.post(GENERATIONS, json=BODY, headers=auth).json()
    assert hit["output_moderation"]["verdict"] == "flagged"
    (item,) = listed(client, auth)
    assert item["id"] == unchecked["id"]
    assert item["output_moderation"]["verdict"] == "flagged"
    assert item["output_moderation"]["categories"] == ["violent_crimes"]
