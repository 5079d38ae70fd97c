"""The console: one dependency-free page to use the API from a browser, phone or desktop.

Generate (synchronously or as a job), with reference images checked in the page; see the
image, its metadata, a download link and the signed URL; and, with the admin token, manage
keys (create, rotate, revoke), see each key's spend for 30 days and its recent images.

Served by the app itself (so it works on the Worker and locally) from ``console_assets``.
Credentials live only in the page's JavaScript variables and password fields: never in
storage, a cookie or a URL. The page loads nothing but its own script, stylesheet and icon,
under a Content-Security-Policy without any inline script or style.
"""

import re

from .console_assets import FAVICON_ICO, FAVICON_SVG, PAGE, SCRIPT, STYLES

__all__ = [
    "ASSETS",
    "CSP",
    "FAVICON_ICO",
    "FAVICON_SVG",
    "PAGE",
    "SCRIPT",
    "STYLES",
    "page_csp",
]

# Images: the signed URLs (same origin), reference previews (blob:), b64_json (data:).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' blob: data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

# The files the page loads besides itself: (path, content, media type).
ASSETS: tuple[tuple[str, str | bytes, str], ...] = (
    ("/console.js", SCRIPT, "text/javascript"),
    ("/console.css", STYLES, "text/css"),
    ("/favicon.svg", FAVICON_SVG, "image/svg+xml"),
    ("/favicon.ico", FAVICON_ICO, "image/x-icon"),
)

_ORIGIN = re.compile(r"^(https?://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?)(?:/.*)?$")


def page_csp(public_base_url: str | None) -> str:
    """The page's policy. Signed URLs carry ``PUBLIC_BASE_URL``'s origin when it is set,
    which may not be the origin the console is opened on: images may come from there too
    (the script polls jobs on its own origin, so ``connect-src`` stays ``'self'``)."""
    match = _ORIGIN.match(public_base_url or "")
    if match is None:
        return CSP
    return CSP.replace("img-src 'self'", f"img-src 'self' {match.group(1)}")
