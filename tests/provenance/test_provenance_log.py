"""What is logged of each image made, when part of it cannot be: a generation whose
fingerprint cannot be computed (the image service down) is still found by its hash."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fluxgate.delivery.variants import TransformUnavailable
from fluxgate.imaging.image_bytes import ImageBytes, InProcessImage
from fluxgate.local.provenance_sqlite import SqliteProvenance
from fluxgate.model.params import GenerationParams
from fluxgate.provenance.fingerprint import GrayGrid
from fluxgate.service.provenance_log import ProvenanceLog
from fluxgate.store.records import GenerationRecord


class DownRenderer:
    async def gray_grid(self, image: ImageBytes) -> GrayGrid:
        raise TransformUnavailable("the Images binding failed: network")


def record_of(image: InProcessImage, sha256: str) -> GenerationRecord:
    return GenerationRecord.new(
        GenerationParams("a pear", 256, 256, 4, None, 1, "placeholder/flux-2-dev"),
        owner="key_a",
        created=1_800_000_000,
        prompt="a pear",
        seed=1,
        object_key=f"images/{sha256}.png",
        content_type="image/png",
        size=image.size,
        sha256=sha256,
        policy_version=1,
        moderated=False,
        cache_key="c",
    )


def test_without_a_fingerprint_a_generation_is_still_found_by_its_hash(tmp_path: Path) -> None:
    log = ProvenanceLog(SqliteProvenance(tmp_path / "p.sqlite3"), DownRenderer(), None)
    image = InProcessImage(b"\x89PNG\r\n\x1a\n" + b"pixels")

    async def scenario() -> None:
        sha256 = await image.sha256()
        record = record_of(image, sha256)
        await log.generated(record, image)
        found = await log.index.by_hash(sha256)
        assert found is not None and found.generation == record.id
        assert found.fingerprint is None

    asyncio.run(scenario())
