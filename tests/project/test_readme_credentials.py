"""The README's summary of what a C2PA validator reads in a variant is what it reads: a
fresh ``256.webp`` from each runtime, given to c2pa-python with the signing chain's root as
its trust anchor, summarises to the block the README shows."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ..support.bodies import generate, generation
from ..support.c2pa_validator import summary, validate
from ..support.config import C2PA_ROOT

pytestmark = pytest.mark.runtimes("local", "worker")

README = Path(__file__).resolve().parents[2] / "README.md"


def shown() -> list[str]:
    found = re.search(r"<!-- credentials-summary -->\n```text\n(.*?)```", README.read_text(), re.S)
    assert found, "the README has no credentials summary"
    return found.group(1).splitlines()


def test_the_readme_shows_what_the_validator_reads_in_a_variant(client, auth):
    r = generate(client, auth, generation("a lighthouse at dusk", variants=["256.webp"]))
    assert r.status_code == 200, r.text
    url = urlsplit(r.json()["data"][0]["variants"]["256.webp"])
    download = client.get(f"{url.path}?{url.query}")
    assert download.status_code == 200
    found = validate(download.content, "webp", C2PA_ROOT)
    assert found is not None
    assert summary(found) == shown()
