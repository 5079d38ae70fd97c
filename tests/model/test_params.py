"""A generation's resolved parameters, as an async job stores them and reads them back."""

import json
from dataclasses import replace

from fluxgate.imaging.formats import inspect_image
from fluxgate.local.placeholder import render_png
from fluxgate.model.params import GenerationParams, ReferenceImage
from fluxgate.store.cache_keys import cache_key


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


def test_a_job_names_its_model_and_runs_under_the_name_served_when_it_runs():
    """The payload carries the model's Workers AI id; the served name (a placeholder's,
    or the real id) is the backend's when the job runs."""
    from fluxgate.model.family import FLUX_2_DEV, FLUX_2_KLEIN_4B
    from fluxgate.model.params import job_model

    klein = replace(params(), model="placeholder/flux-2-klein-4b")
    stored = klein.to_dict()
    assert stored["model"] == FLUX_2_KLEIN_4B.id
    assert job_model(stored) is FLUX_2_KLEIN_4B
    again = GenerationParams.from_dict(stored, (reference(),), model=FLUX_2_KLEIN_4B.id)
    assert again.model == FLUX_2_KLEIN_4B.id and again.spec is FLUX_2_KLEIN_4B
    del stored["model"]  # a job queued before the family was served
    assert job_model(stored) is FLUX_2_DEV
