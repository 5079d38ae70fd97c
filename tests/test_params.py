"""A generation's resolved parameters, as an async job stores them and reads them back."""

import json

from fluxgate.cache import cache_key
from fluxgate.images import inspect_image
from fluxgate.local.placeholder import render_png
from fluxgate.params import GenerationParams, ReferenceImage


def reference() -> ReferenceImage:
    data = render_png(64, 48, bytes(range(32)))
    return ReferenceImage(data, inspect_image(data), "ab" * 32)


def params() -> GenerationParams:
    return GenerationParams(
        prompt="a kite",
        width=768,
        height=512,
        steps=4,
        guidance=3.5,
        seed=None,
        model="m",
        references=(reference(),),
    )


def test_a_job_payload_round_trips_through_json_to_the_same_cache_key():
    original = params()
    stored = json.loads(json.dumps(original.to_dict()))
    again = GenerationParams.from_dict(stored, original.references, model="m")
    assert again == original
    assert cache_key(again, "a kite", "key_1") == cache_key(original, "a kite", "key_1")


def test_a_job_runs_on_the_model_served_when_it_runs_not_one_named_in_its_payload():
    stored = params().to_dict()
    assert "model" not in stored
    assert GenerationParams.from_dict(stored, (reference(),), model="now").model == "now"
