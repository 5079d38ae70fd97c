"""The documentation holds together: the README stays a guide a newcomer reads in ten minutes
and links to a page for everything else; every relative link (and the heading it names) and
every repository path the pages name exists; and no page or source comment cites an
internal tracker's numbers, which mean nothing to a reader of the code."""

import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))

FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", flags=re.MULTILINE)

# A number after "issue" (or a list of "items" numbers), never a standard's "UTS #39".
TRACKER = re.compile(r"\bissues? #?\d+|\bitems? \d+(?:, \d+)* (?:and|of)\b", re.IGNORECASE)
# A path the docs name, in a code span: `src/...`, `tests/...`, `worker/local/...`.
NAMED_PATH = re.compile(r"(?<![\w/.])(?:src|tests|scripts|bench|worker|docs|console)/[\w./-]*[\w/]")
# Paths in workerd's source tree, which docs/operations.md cites; not this repository's.
FOREIGN = {"src/pyodide/pyodide_extra.capnp", "src/pyodide/helpers.bzl"}
SCANNED = ("src", "tests", "bench", "scripts", "worker", "docs")
SUFFIXES = {".py", ".md", ".mjs", ".js", ".toml", ".sh"}
SKIPPED = {"node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def prose(text: str) -> str:
    """The text a reader sees as prose: code blocks and code spans removed."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    found: set[str] = set()
    repeats: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        slug = anchor(heading)
        count = repeats.get(slug, 0)
        repeats[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(page: Path) -> Iterator[str]:
    for target in LINK.findall(prose(page.read_text())):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            yield target


def scanned_files() -> Iterator[Path]:
    yield README
    yield ROOT / "wrangler.toml"
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in SUFFIXES and path.is_file() and not SKIPPED & set(path.parts):
                yield path


def test_the_readme_is_a_ten_minute_guide():
    text = README.read_text()
    assert len(text.splitlines()) < 300, "the README is a guide; the reference goes in docs/"
    for section in ("## Quick start", "<!-- readme-session:", "## Where to read more"):
        assert section in text, f"the README has no {section!r}"
    linked = {target.split("#")[0] for target in relative_links(README)}
    assert {f"docs/{page.name}" for page in PAGES} <= linked, "the README links every page"


def test_every_relative_link_leads_to_a_file_and_heading_that_exist():
    broken = []
    for page in [README, *PAGES]:
        for target in relative_links(page):
            path, _, fragment = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_every_path_the_pages_name_exists():
    """A file moved or renamed takes its mentions with it."""
    missing = [
        f"{page.name}: {path}"
        for page in [README, *PAGES]
        for span in CODE_SPAN.findall(FENCE.sub("", page.read_text()))
        for path in NAMED_PATH.findall(span)
        if path not in FOREIGN and not (ROOT / path).exists()
    ]
    assert not missing, "\n".join(missing)


def test_the_anchor_of_a_heading_is_githubs():
    assert anchor("Safe retries (`Idempotency-Key`)") == "safe-retries-idempotency-key"
    assert anchor("`GET /v1/images`, `GET /v1/jobs`") == "get-v1images-get-v1jobs"
    assert anchor("Variants (thumbnails, WebP/AVIF)") == "variants-thumbnails-webpavif"


def test_no_page_or_comment_cites_an_internal_issue_number():
    citing = []
    for path in scanned_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if TRACKER.search(line):
                citing.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not citing, "say what the code does, not which ticket asked:\n" + "\n".join(citing)


def test_the_tracker_pattern_spares_unicode_standards():
    # Assembled from words, so that this file's own lines do not cite anything.
    assert TRACKER.search(" ".join(["the fix for", "issue", "11,", "items", "1 and 10"]))
    assert TRACKER.search(" ".join(["see", "Issue", "#14"]))
    assert not TRACKER.search("UTS #39 skeletons, UAX #15 normalisation, 4 items of 10")
