"""docs/api.md is executable: every ```bash block runs, in order, in one shell against a
real server of each runtime (`fluxgate serve`, and the Worker on workerd as `npm run worker`
serves it), and what the page says it prints is what it prints."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from ..support.servers import ADMIN, serve

pytestmark = pytest.mark.runtimes("local", "worker")

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_page_has_examples_for_every_endpoint():
    text = "\n".join(blocks())
    for path in (
        "/healthz",
        "/readyz",
        "/v1/admin/keys",
        "/v1/images/generations",
        "/v1/images/$IMAGE_ID",
        "/v1/images?limit",
        "/v1/jobs",
        "$KEY_ID/images",
        "/v1/tokens",
        "/v1/usage",
        "/v1/usage?from=",
        "/v1/admin/usage",
        "/v1/policy",
        "/v1/admin/policy",
        "/v1/models",
        "/v1/images/edits",
        "Idempotency-Key",
        "/rotate",
        "/revoke",
        "$URL",
        "?variants=",
        "exiftool",
        "output_moderation",
        "/v1/provenance/verify",
    ):
        assert path in text, f"no example uses {path}"


def test_every_example_runs(runtime, tmp_path):
    reason = os.environ.get("FLUXGATE_NO_SYSTEM_PACKAGES")
    if reason:
        pytest.skip(f"curl/jq/exiftool could not be installed on this machine: {reason}")
    if not all(shutil.which(tool) for tool in ("jq", "curl", "exiftool")):
        if os.environ.get("CI"):
            pytest.fail(
                "curl, jq and exiftool are needed for the docs test (.ci/run installs them)"
            )
        pytest.skip("curl, jq or exiftool is not installed")
    with serve(runtime, tmp_path) as server:
        script = "set -euo pipefail\n" + "\n".join(
            f"echo '=== block {i}'\n{block}" for i, block in enumerate(blocks())
        )
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env={**server.env, "FLUXGATE": server.base, "ADMIN_TOKEN": ADMIN},
            check=False,
        )
    out = result.stdout
    assert result.returncode == 0, f"{out[-3000:]}\n{result.stderr[-3000:]}"
    assert out.count("=== block") == len(blocks())
    assert re.search(r"x-cache: MISS", out, re.IGNORECASE)
    assert re.search(r"x-cache: HIT", out, re.IGNORECASE)
    assert re.search(r"x-cache: BYPASS", out, re.IGNORECASE)
    lines = out.splitlines()
    assert "304" in lines and "403" in lines and "401" in lines  # conditional, tampered, revoked
    assert '"denied_term"' in lines
    assert "succeeded" in lines and "whsec_" in lines  # the async job, the webhook secret
    assert '"unsupported_value"' in out or '"param": "n"' in out
    assert any(x.startswith('{"from":') and x.count("],[") == 6 for x in lines)  # 7 days
    # Variants: the signed names, a real WebP (its RIFF form type), 304, a range, the set.
    assert '["256.webp","512.avif"]' in lines
    assert re.search(r"^content-type: image/webp", out, re.IGNORECASE | re.MULTILINE)
    assert "WEBP" in lines and "RIFF" in lines
    assert '{"code":"invalid_variant","param":"variants[0]"}' in lines
    with Image.open(tmp_path / "thumb.webp") as thumb:  # what the page says it is
        assert (thumb.format, thumb.width) == ("WEBP", 256)
    # AI disclosure: the original and the variant say so, and name the generator
    trained = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    assert lines.count(trained) == 2
    generator = (
        "placeholder/flux-2-dev" if runtime == "local" else "@cf/black-forest-labs/flux-2-dev"
    )
    assert generator in lines
    # Provenance: the original recognised as the caller's generation, the variant too
    assert '{"generated_here":true,"ours":true}' in lines
    assert '{"generated_here":true,"by":true}' in lines
    assert '{"verdict":"safe","categories":[]}' in lines  # the flagging key's generation
    assert '{"status":"ready","ok":{"config":true,"kv":true,"r2":true,"model":true}}' in lines
    assert lines.count("my-app-trace-42") == 1  # the error body's request_id
    # the klein draft, then the dev render of the same prompt and seed, as the page shows
    shown = re.findall(r"```text\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    drafted = next(block for block in shown if "flux-2-klein-4b" in block).splitlines()
    if runtime == "local":  # no Cloudflare credentials: the offline stand-ins drew them
        drafted = [line.replace("@cf/black-forest-labs/", "placeholder/") for line in drafted]
    assert all(line in lines for line in drafted), drafted
    assert '{"code":"unsupported_parameter","param":"steps"}' in lines
    # the retry replayed the first answer (same id), and the key was refused for another
    replayed = [i for i, line in enumerate(lines) if line.lower().startswith("idempotent-")]
    assert len(replayed) == 1 and lines[replayed[0] - 1] == lines[replayed[0] - 3]
    assert '{"code":"idempotency_key_reused","param":"Idempotency-Key"}' in lines
    assert any(line.lower().startswith("x-request-id: my-app-trace-42") for line in lines)
