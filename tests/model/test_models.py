"""The FLUX.2 family: dev, klein 4B and klein 9B, chosen per request."""

import base64

import pytest

from fluxgate import FLUX_MODEL_ID
from fluxgate.local.placeholder import parse_multipart

from ..support.admin import new_key, put_policy
from ..support.bodies import generate, generation
from ..support.image_files import image_bytes
from ..support.polling import finished

pytestmark = pytest.mark.runtimes("local", "worker")

KLEIN_4B = "@cf/black-forest-labs/flux-2-klein-4b"
KLEIN_9B = "@cf/black-forest-labs/flux-2-klein-9b"
DRAFT = generation("a paper boat on a pond", width=1024, height=768, seed=7)


def sent_fields(ai) -> dict[str, str]:
    """The text fields of the last call the AI binding received."""
    call = ai.inputs[-1]["multipart"]
    return parse_multipart(call["body"], call["contentType"])[0]


# -- listing ------------------------------------------------------------------------------


def test_the_models_listing_names_each_model_with_its_capabilities_and_price(client, auth):
    cards = {card["id"]: card for card in client.get("/v1/models", headers=auth).json()["data"]}
    assert list(cards) == [FLUX_MODEL_ID, KLEIN_4B, KLEIN_9B]
    dev, klein4, klein9 = cards[FLUX_MODEL_ID], cards[KLEIN_4B], cards[KLEIN_9B]
    assert dev["default"] is True and klein4["default"] is False
    assert all(card["allowed"] for card in cards.values())
    assert dev["capabilities"]["steps"] == {"settable": True, "default": 25, "min": 1, "max": 50}
    assert klein4["capabilities"]["steps"] == {"settable": False, "default": 4, "min": 4, "max": 4}
    assert klein9["capabilities"]["reference_images"] == {"max": 4, "max_side": 511}
    assert klein9["capabilities"]["sizes"] == {"min": 256, "max": 1920, "default": "1024x768"}
    assert dev["pricing"]["basis"] == "tile_step"
    assert dev["pricing"]["output_tile_step_usd"] == 0.00041
    assert klein4["pricing"] == {
        "basis": "tile",
        "input_tile_usd": 0.000059,
        "output_tile_usd": 0.000287,
        "source": "https://developers.cloudflare.com/workers-ai/platform/pricing/",
    }
    assert klein9["pricing"]["basis"] == "megapixel"
    assert klein9["pricing"]["first_output_megapixel_usd"] == 0.015
    assert "flux-2-klein-9b" in klein9["aliases"] and klein9["name"] == "FLUX.2 [klein] 9B"


@pytest.mark.parametrize("name", ["flux-2-klein-4b", "black-forest-labs/flux-2-klein-4b", KLEIN_4B])
def test_a_model_is_found_by_any_of_its_names(client, auth, name):
    card = client.get(f"/v1/models/{name}", headers=auth)
    assert card.status_code == 200 and card.json()["id"] == KLEIN_4B


# -- choosing a model ---------------------------------------------------------------------


def test_klein_draws_with_its_fixed_schedule_and_its_own_price(client, auth, ai):
    r = generate(client, auth, {**DRAFT, "model": "flux-2-klein-4b"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == KLEIN_4B and r.headers["x-fluxgate-model"] == KLEIN_4B
    assert body["steps"] == 4
    assert body["cost"] == {
        "steps": 4,
        "output_tiles": 4,
        "input_tiles": 0,
        "estimated_usd": pytest.approx(4 * 0.000287),  # per tile, no per-step factor
        "charged_usd": pytest.approx(4 * 0.000287),
    }
    assert ai.called_models == [KLEIN_4B]
    assert "steps" not in sent_fields(ai)  # klein's contract: the schedule is not sent


def test_klein_9b_is_priced_per_megapixel_with_input_images(client, auth, ai):
    reference = image_bytes("PNG", 300, 200)
    body = {
        **DRAFT,
        "model": "black-forest-labs/flux-2-klein-9b",
        "width": 1920,
        "height": 1080,
        "input_image_0": base64.b64encode(reference).decode(),
    }
    r = generate(client, auth, body)
    assert r.status_code == 200, r.text
    # 1920x1080 is two started megapixels (the first $0.015, the next $0.002), plus one
    # input megapixel ($0.002).
    assert r.json()["cost"]["estimated_usd"] == pytest.approx(0.015 + 0.002 + 0.002)
    assert ai.called_models == [KLEIN_9B]


def test_dev_stays_the_default_and_takes_steps(client, auth, ai):
    r = generate(client, auth, {**DRAFT, "steps": 8})
    assert r.status_code == 200 and r.json()["model"] == FLUX_MODEL_ID
    assert r.json()["cost"]["estimated_usd"] == pytest.approx(8 * 4 * 0.00041)
    assert sent_fields(ai)["steps"] == "8" and ai.called_models == [FLUX_MODEL_ID]


@pytest.mark.parametrize("model", ["flux-2-klein-4b", KLEIN_9B])
def test_steps_sent_to_klein_are_refused_naming_the_parameter(client, auth, ai, model):
    r = generate(client, auth, {**DRAFT, "model": model, "steps": 4})
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("unsupported_parameter", "steps")
    assert "fixed 4-step" in error["message"]
    assert ai.calls == 0


def test_an_unknown_model_is_refused_naming_the_served_ones(client, auth, ai):
    r = generate(client, auth, {**DRAFT, "model": "flux-1-schnell"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    assert "flux-2-klein-4b" in error["message"]
    assert client.get("/v1/models/flux-1-schnell", headers=auth).status_code == 404
    assert ai.calls == 0


def test_multipart_requests_choose_the_model_too(client, auth, ai):
    r = client.post(
        "/v1/images/generations",
        data={"prompt": "a paper boat", "model": "flux-2-klein-9b", "width": "512"},
        files={"input_image_0": ("ref.png", image_bytes("PNG", 64, 64), "image/png")},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    assert r.json()["model"] == KLEIN_9B and ai.called_models == [KLEIN_9B]


def test_a_klein_draft_then_a_dev_render_of_the_same_prompt_and_seed(client, auth, ai):
    """Drafts and renders are cached apart: the model is part of the cache key."""
    draft = generate(client, auth, {**DRAFT, "model": "flux-2-klein-4b"}).json()
    render = generate(client, auth, {**DRAFT, "model": "flux-2-dev"}).json()
    assert (draft["model"], render["model"]) == (KLEIN_4B, FLUX_MODEL_ID)
    assert draft["seed"] == render["seed"] == 7
    assert draft["sha256"] != render["sha256"]
    again = generate(client, auth, {**DRAFT, "model": KLEIN_4B})
    assert again.headers["x-cache"] == "HIT" and again.json()["sha256"] == draft["sha256"]
    assert ai.called_models == [KLEIN_4B, FLUX_MODEL_ID]


def test_an_async_job_runs_the_model_it_was_submitted_for(client, auth, ai):
    r = generate(client, auth, {**DRAFT, "model": "flux-2-klein-9b", "async": True})
    assert r.status_code == 202, r.text
    job = finished(client, auth, r.json())
    assert job["status"] == "succeeded", job
    assert job["result"]["model"] == KLEIN_9B and job["result"]["steps"] == 4
    assert ai.called_models == [KLEIN_9B]


# -- policy -------------------------------------------------------------------------------


def test_a_tier_allows_a_subset_of_models_with_limits_of_their_own(client, ai):
    put_policy(
        client,
        tiers={"standard": {"models": {"flux-2-klein-4b": {}, "flux-2-dev": {"max_width": 512}}}},
    )
    auth = new_key(client, "drafts")
    cards = client.get("/v1/models", headers=auth).json()["data"]
    assert {card["id"]: card["allowed"] for card in cards} == {
        FLUX_MODEL_ID: True,
        KLEIN_4B: True,
        KLEIN_9B: False,
    }
    refused = generate(client, auth, {**DRAFT, "model": "flux-2-klein-9b"})
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == ("model_not_allowed", "model")
    assert "flux-2-klein-4b" in error["message"]
    too_wide = generate(client, auth, DRAFT)  # dev at 1024 px, over its 512 in this tier
    assert too_wide.status_code == 403
    assert too_wide.json()["error"]["code"] == "tier_limit_exceeded"
    assert too_wide.json()["error"]["param"] == "width"
    assert generate(client, auth, {**DRAFT, "model": "flux-2-klein-4b"}).status_code == 200
    policy = client.get("/v1/policy", headers=auth).json()
    assert list(policy["models"]) == ["flux-2-dev", "flux-2-klein-4b"]
    assert policy["models"]["flux-2-dev"]["max_width"] == 512
    assert policy["models"]["flux-2-klein-4b"]["max_steps"] is None  # fixed schedule
    assert ai.called_models == [KLEIN_4B]


def test_a_policy_naming_an_unknown_model_is_refused(client, admin):
    current = client.get("/v1/admin/policy", headers=admin)
    body = {
        "version": current.json()["version"] + 1,
        "tiers": {"standard": {"models": {"flux-1-schnell": {}}}},
    }
    r = client.put("/v1/admin/policy", json=body, headers=admin)
    assert r.status_code == 400
    assert "unknown model 'flux-1-schnell'" in r.json()["error"]["message"]


def test_a_models_own_limit_in_a_tier_beats_a_keys_override(client, ai):
    models = {"flux-2-dev": {"max_width": 512}, "flux-2-klein-9b": {}}
    put_policy(client, tiers={"standard": {"models": models}})
    auth = new_key(client, "wide", overrides={"max_width": 1920})
    dev = generate(client, auth, DRAFT)  # 1024 wide: dev's own 512 in this tier wins
    assert dev.status_code == 403 and dev.json()["error"]["param"] == "width"
    klein = generate(client, auth, {**DRAFT, "model": "flux-2-klein-9b", "width": 1920})
    assert klein.status_code == 200, klein.text  # no limit of its own: the override applies
    assert ai.called_models == [KLEIN_9B]


def test_max_steps_under_a_klein_model_is_refused_when_the_policy_is_stored(client, admin):
    current = client.get("/v1/admin/policy", headers=admin).json()
    body = {
        "version": current["version"] + 1,
        "tiers": {"standard": {"models": {"flux-2-klein-4b": {"max_steps": 4}}}},
    }
    r = client.put("/v1/admin/policy", json=body, headers=admin)
    assert r.status_code == 400
    assert "fixed 4-step schedule" in r.json()["error"]["message"]


def test_a_placeholders_name_is_not_a_model_where_the_real_one_runs(client, auth, ai):
    r = generate(client, auth, {**DRAFT, "model": "placeholder/flux-2-dev"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_found"
    assert client.get("/v1/models/placeholder/flux-2-dev", headers=auth).status_code == 404
    assert ai.calls == 0
