"""The console: one dependency-free page to use the API from a browser, phone or desktop.

Generate (synchronously or as a job), with reference images checked in the page; see the
image, its metadata, a download link and the signed URL; and, with the admin token, manage
keys (create, rotate, revoke), see each key's spend for 30 days and its recent images.
Credentials live only in the page's JavaScript variables and password fields: never in
storage, a cookie or a URL. The page loads nothing but its own script, stylesheet and icon,
under a Content-Security-Policy without any inline script or style.

The console is static files, in ``console/`` at the root of the repository: ``index.html``,
``console.js``, ``console.css``, ``favicon.svg`` and ``favicon.ico``, with two files in
Cloudflare's static-asset syntax beside them, read on both runtimes: ``_headers`` (the
policy, ``nosniff``, the referrer policy and the cache header of every file) and
``_redirects`` (``/console`` and ``/playground`` answer the page of ``/``).

On Workers, ``[assets]`` in wrangler.toml uploads that directory as the Worker's static
assets: Cloudflare answers those paths itself, before the Worker and without running it
(free, and no Python starts for a page load). Nothing of the console is in the Worker's
Python bundle, and the app has no route for it.

Locally, :class:`StaticConsole` (ASGI, in front of the whole app) answers the same paths
from the same files, with the same headers, as Cloudflare's asset server does for this
directory: GET and HEAD, an ``ETag`` and ``If-None-Match`` (304), 405 without a body for
any other method, 307 from ``/index.html`` and ``/index`` to ``/``; as on Workers, these
answers have no request id and no access-log line. :func:`load` reads ``_headers`` and
``_redirects`` itself and refuses (``ConsoleConfigError``) any rule beyond what it
implements, so the two runtimes cannot silently differ. The directory is found next to the
package's source tree (a checkout, or an editable install); without it, the local server
has no console.

The policy is fixed, whatever ``PUBLIC_BASE_URL`` is: a signed URL may carry another origin
(and a path prefix), so the script shows a signed image through the page's own API instead
(the same ``/v1/...`` path and signature, resolved like every API call it makes), and
``img-src 'self'`` is enough; the URL it shows and copies is the signed one, unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["DIRECTORY", "ConsoleConfigError", "Site", "StaticConsole", "load"]

# A checkout: src/fluxgate/api/console.py -> the repository's console/. An installed wheel
# carries the same files as fluxgate/console_site/ (pyproject.toml). On Workers neither is a
# directory (Cloudflare serves the console there), and :func:`load` answers None.
_PARENTS = Path(__file__).resolve().parents
_CHECKOUT = (_PARENTS[3] if len(_PARENTS) > 3 else _PARENTS[-1]) / "console"
DIRECTORY = _CHECKOUT if _CHECKOUT.is_dir() else _PARENTS[1] / "console_site"

# The media types wrangler gives these extensions on upload (its `mime` lookup), the
# charset included. A file of any other extension is refused: add it here first.
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/vnd.microsoft.icon",
}

# Cloudflare's Cache-Control for an asset when no rule sets one (and the request has no
# Authorization or Range header).
DEFAULT_CACHE_CONTROL = "public, max-age=0, must-revalidate"

# The files of the directory that configure it, never served.
CONFIG_FILES = frozenset({"_headers", "_redirects", ".assetsignore"})

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


class ConsoleConfigError(ValueError):
    """``console/`` holds something the local server would not serve as Cloudflare does."""


@dataclass(frozen=True)
class Asset:
    """One file, as served: its bytes, media type and strong validator."""

    body: bytes
    media_type: str
    etag: str


@dataclass(frozen=True)
class Rule:
    """One block of ``_headers``: a path, or a prefix ending in ``*``, and its headers."""

    pattern: str
    headers: tuple[tuple[str, str], ...]

    def matches(self, path: str) -> bool:
        if self.pattern.endswith("*"):
            return path.startswith(self.pattern[:-1])
        return path == self.pattern


@dataclass(frozen=True)
class Site:
    """What the directory answers, path by path (the query string plays no part)."""

    assets: Mapping[str, Asset]  # request path -> file (the page under its rewrites too)
    redirects: Mapping[str, str]  # request path -> Location (Cloudflare's HTML handling)
    rules: tuple[Rule, ...]

    def answer(self, method: str, path: str, query: str, headers: Headers) -> Response | None:
        """The response for a request, or None when the directory has nothing at ``path``
        (the app answers: on Workers, the Worker runs)."""
        path = re.sub("/+", "/", path)
        asset = self.assets.get(path)
        if asset is None and path not in self.redirects:
            return None
        if method not in ("GET", "HEAD"):
            return self._finish(Response(status_code=405), path)
        if asset is None:  # a redirect, which keeps the query string
            target = self.redirects[path] + (f"?{query}" if query else "")
            return self._finish(Response(status_code=307, headers={"Location": target}), path)
        fields = {"ETag": asset.etag, "Content-Type": asset.media_type}
        if "authorization" not in headers and "range" not in headers:
            fields["Cache-Control"] = DEFAULT_CACHE_CONTROL
        if headers.get("if-none-match") in (asset.etag, f"W/{asset.etag}"):
            return self._finish(Response(status_code=304, headers=fields), path)
        if method == "HEAD":  # the length of the body a GET gets, and no body
            fields["Content-Length"] = str(len(asset.body))
            return self._finish(Response(headers=fields), path)
        return self._finish(Response(asset.body, headers=fields), path)

    def _finish(self, response: Response, path: str) -> Response:
        """``_headers`` on top, as Cloudflare applies it: a header the rules set replaces
        the default; set again by a later matching rule, the values are joined."""
        set_here: set[str] = set()
        for rule in self.rules:
            if rule.matches(path):
                for name, value in rule.headers:
                    key = name.lower()
                    if key in set_here:
                        response.headers[name] = f"{response.headers[name]}, {value}"
                    else:
                        response.headers[name] = value
                        set_here.add(key)
        return response


class StaticConsole:
    """ASGI middleware: the console's paths answered from :class:`Site`, everything else
    passed to the app. Outermost, as Cloudflare's asset server is in front of the Worker."""

    def __init__(self, app: ASGIApp, site: Site) -> None:
        self.app = app
        self.site = site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            response = self.site.answer(
                scope["method"],
                scope["path"],
                scope.get("query_string", b"").decode("latin-1"),
                Headers(scope=scope),
            )
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


@functools.cache
def load(directory: Path = DIRECTORY) -> Site | None:
    """The directory as served, read once; None when there is no such directory."""
    if not directory.is_dir():
        return None
    assets: dict[str, Asset] = {}
    redirects: dict[str, str] = {}
    for file in sorted(directory.iterdir()):
        if file.name in CONFIG_FILES or file.name.startswith("."):
            continue  # dotfiles (.DS_Store) are not served, here as on Cloudflare (.assetsignore)
        if not file.is_file():
            raise ConsoleConfigError(f"{file}: only files, no folders, are served")
        media_type = MEDIA_TYPES.get(file.suffix)
        if media_type is None:
            raise ConsoleConfigError(f"{file}: no media type for {file.suffix!r} (MEDIA_TYPES)")
        body = file.read_bytes()
        asset = Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        if file.name == "index.html":  # auto-trailing-slash: / serves it, the rest move
            assets["/"] = asset
            redirects["/index.html"] = redirects["/index"] = "/"
        elif file.suffix == ".html":
            raise ConsoleConfigError(f"{file}: only index.html is served as a page")
        else:
            assets[f"/{file.name}"] = asset
    for source, target in _rewrites(directory / "_redirects"):
        if target not in assets:
            raise ConsoleConfigError(f"_redirects: {target} is not a file served here")
        assets[source] = assets[target]
    return Site(assets, redirects, tuple(_header_rules(directory / "_headers")))


def _lines(file: Path) -> list[str]:
    if not file.exists():
        return []
    text = file.read_text(encoding="utf-8")
    return [line.rstrip() for line in text.splitlines() if line.strip() and not _comment(line)]


def _comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _rewrites(file: Path) -> list[tuple[str, str]]:
    """``_redirects`` lines of the one kind the console uses: ``/path /served-path 200``."""
    rewrites = []
    for line in _lines(file):
        parts = line.split()
        if len(parts) != 3 or parts[2] != "200" or not all(_plain(p) for p in parts[:2]):
            raise ConsoleConfigError(f"_redirects: {line!r}: only '/path /path 200' is served")
        rewrites.append((parts[0], parts[1]))
    return rewrites


def _plain(path: str) -> bool:
    return path.startswith("/") and not any(c in path for c in "*:?#")


def _header_rules(file: Path) -> list[Rule]:
    """``_headers`` blocks: an unindented path (exact, or ending in ``*``), then indented
    ``Name: value`` lines."""
    blocks: list[tuple[str, list[tuple[str, str]]]] = []
    for line in _lines(file):
        if not line[0].isspace():
            star = line.find("*")
            if not line.startswith("/") or ":" in line or star not in (-1, len(line) - 1):
                raise ConsoleConfigError(f"_headers: {line!r}: only a path or 'prefix*'")
            blocks.append((line, []))
            continue
        name, colon, value = line.strip().partition(":")
        if not blocks or not colon or not _HEADER_NAME.match(name):
            raise ConsoleConfigError(f"_headers: {line!r}: expected 'Name: value' under a path")
        blocks[-1][1].append((name, value.strip()))
    return [Rule(pattern, tuple(headers)) for pattern, headers in blocks]
