"""Model-based moderation (Llama Guard through the AI binding), per tier."""

import json

import pytest

from fluxgate.policy.prompt_moderation import ModerationUnavailable, Verdict, parse_guard_output

from ..support.admin import put_policy
from ..support.bodies import generation

pytestmark = pytest.mark.runtimes("local", "worker")

BODY = generation("a knight with a sword", square=256, steps=2)


def moderation(client, mode):
    put_policy(client, tiers={"standard": {"moderation": mode}})


def test_off_by_default_the_classifier_is_not_called(client, auth, guard):
    assert client.post("/v1/images/generations", json=BODY, headers=auth).status_code == 200
    assert guard.calls == 0


def test_an_unsafe_prompt_is_refused_with_reason_and_category(client, auth, guard, ai):
    moderation(client, "fail_closed")
    guard.unsafe = {"sword": "S1"}
    r = client.post("/v1/images/generations", json=BODY, headers=auth)
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["code"], error["reason"]) == ("prompt_rejected", "moderation")
    assert error["category"] == "violent_crimes" and error["categories"] == ["violent_crimes"]
    assert ai.calls == 0


def test_a_safe_prompt_passes_and_the_text_answer_form_is_understood(client, auth, guard):
    moderation(client, "fail_closed")
    guard.answer_text = True
    assert client.post("/v1/images/generations", json=BODY, headers=auth).status_code == 200
    guard.unsafe = {"dragon": "S10"}
    r = client.post("/v1/images/generations", json={**BODY, "prompt": "a dragon"}, headers=auth)
    assert r.status_code == 400 and r.json()["error"]["category"] == "hate"


def test_an_outage_fails_closed_with_503(client, auth, guard, ai):
    moderation(client, "fail_closed")
    guard.failures = ["3040: Capacity temporarily exceeded"]
    r = client.post("/v1/images/generations", json=BODY, headers=auth)
    assert r.status_code == 503 and r.json()["error"]["code"] == "moderation_unavailable"
    assert ai.calls == 0


def test_an_outage_fails_open_when_the_tier_says_so(client, auth, guard, ai):
    moderation(client, "fail_open")
    guard.failures = ["3007: timeout"]
    assert client.post("/v1/images/generations", json=BODY, headers=auth).status_code == 200
    assert ai.calls == 1


def test_a_cache_hit_made_before_moderation_is_moderated_once_enabled(client, auth, guard, ai):
    assert client.post("/v1/images/generations", json=BODY, headers=auth).status_code == 200
    moderation(client, "fail_closed")
    guard.unsafe = {"sword": "S1"}
    r = client.post("/v1/images/generations", json=BODY, headers=auth)
    assert r.status_code == 400 and r.json()["error"]["reason"] == "moderation"
    guard.unsafe = {}
    hit = client.post("/v1/images/generations", json=BODY, headers=auth)
    assert hit.headers["x-cache"] == "HIT" and ai.calls == 1


def test_hits_made_under_moderation_are_not_moderated_again(client, auth, guard):
    moderation(client, "fail_closed")
    client.post("/v1/images/generations", json=BODY, headers=auth)
    client.post("/v1/images/generations", json=BODY, headers=auth)
    assert guard.calls == 1


def test_refusals_are_audited_with_the_prompt_hash_only(client, auth, guard, audit_lines):
    moderation(client, "fail_closed")
    guard.unsafe = {"sword": "S1"}
    client.post("/v1/images/generations", json=BODY, headers=auth)
    lines = audit_lines()
    refusal = next(line for line in lines if line["action"] == "request.refused")
    assert refusal["reason"] == "moderation" and refusal["key_id"].startswith("key_")
    assert "prompt_sha256" in refusal and "knight" not in json.dumps(lines)
    assert auth["Authorization"].split()[1] not in json.dumps(lines)


@pytest.mark.parametrize(
    ("output", "verdict"),
    [
        ({"response": {"safe": True, "categories": []}}, Verdict(True)),
        ({"response": {"safe": False, "categories": ["S2"]}}, Verdict(False, ("S2",))),
        ({"response": "safe"}, Verdict(True)),
        ({"response": "unsafe\nS1,S9"}, Verdict(False, ("S1", "S9"))),
    ],
)
def test_guard_output_forms(output, verdict):
    assert parse_guard_output(output) == verdict


@pytest.mark.parametrize("output", [{}, {"response": ""}, {"response": "maybe"}, None])
def test_unreadable_guard_output_is_an_outage(output):
    with pytest.raises(ModerationUnavailable):
        parse_guard_output(output)
