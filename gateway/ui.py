"""GET /ui and /ui/{path}: the web UI, served by the gateway from the files in gateway/ui/.

The UI is plain ES modules, CSS and one HTML shell: no build step, nothing fetched from
elsewhere, and it talks to the same HTTP API as every other client (docs/UI.md). What this
module decides is only how the files are served:

- `/ui` redirects to `/ui/`.
- `/ui/<file>` serves that file of gateway/ui/ (`/ui/app.css`, `/ui/js/api.js`) with
  `Cache-Control: no-cache` and an ETag: the names carry no fingerprint, so a browser
  revalidates (a 304 when unchanged).
- `/ui/assets/<version>/<file>` serves the same file, cached for a year (`immutable`):
  `<version>` is a hash of the whole tree, written into index.html where it names the CSS and
  the first module, and relative imports keep the prefix, so after an upgrade every address
  changes and no browser mixes old modules with new ones. Any version serves the current
  file, so an open tab of the previous version still finds the pages it loads later.
- A missing asset is a 404 JSON error: a path under one of the tree's directories (`js/`,
  `vendor/`, `assets/`) or a file name at the top (`/ui/nope.css`).
- Any other path is an address of the app (`/ui/domains/orders.v1`: names may hold dots):
  index.html, whose router (js/router.js) shows that page or its own not-found page. So every
  address opens directly and can be bookmarked.

Every answer carries a strict Content-Security-Policy (no inline script or style, nothing
from another origin, WebSockets to any host since the API's live view may sit behind a proxy
that rewrites the host) and `nosniff`. The files are read once, when the app is built.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gortms.errors import NotFound

UI_DIR = Path(__file__).parent / "ui"
INDEX = "index.html"
ASSETS = "assets"
ASSETS_PLACEHOLDER = b"%ASSETS%"  # in index.html: replaced by /ui/assets/<version>
# The routes this module serves: not API operations, so the OpenAPI document leaves them out.
UI_ROUTES = frozenset({("GET", "/ui"), ("GET", "/ui/{path:path}")})

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'")
REVALIDATE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"

_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
          ".json": "application/json", ".map": "application/json",
          ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
          ".woff2": "font/woff2", ".txt": "text/plain; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class UiFile:
    body: bytes
    content_type: str
    etag: str


def _file(body: bytes, name: str) -> UiFile:
    content_type = _TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
    return UiFile(body, content_type, '"%s"' % hashlib.blake2b(body, digest_size=8).hexdigest())


def load_tree(root: Path = UI_DIR) -> tuple[dict[str, UiFile], str]:
    """Every file under `root` by its relative path, and the tree's version."""
    raw = {path.relative_to(root).as_posix(): path.read_bytes()
           for path in sorted(root.rglob("*"))
           if path.is_file() and not any(part.startswith(".") for part in path.parts)}
    digest = hashlib.blake2b(digest_size=6)
    for name, body in raw.items():
        digest.update(name.encode() + b"\0" + body + b"\0")
    version = digest.hexdigest()
    if INDEX in raw:
        raw[INDEX] = raw[INDEX].replace(ASSETS_PLACEHOLDER, f"/ui/{ASSETS}/{version}".encode())
    return {name: _file(body, name) for name, body in raw.items()}, version


def _matches(if_none_match: str, etag: str) -> bool:
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags


class UiApp:
    """The two endpoints over the files read at construction."""

    def __init__(self, root: Path = UI_DIR) -> None:
        self.files, self.version = load_tree(root)
        self.directories = {name.split("/", 1)[0] for name in self.files if "/" in name}
        self.directories.add(ASSETS)

    async def redirect(self, request: Request) -> Response:
        query = request.url.query
        return RedirectResponse("/ui/" + (f"?{query}" if query else ""))

    async def serve(self, request: Request) -> Response:
        path = request.path_params["path"]
        first, _, rest = path.partition("/")
        if first == ASSETS:  # /ui/assets/<version>/<file>
            found = self.files.get(rest.partition("/")[2])
            cache = IMMUTABLE
        else:
            found = self.files.get(path or INDEX)
            cache = REVALIDATE
        if found is None:
            if self._is_asset(path):
                raise NotFound(f"no file /ui/{path} in the web UI")
            found, cache = self.files[INDEX], REVALIDATE  # an address of the app
        return self._answer(request, found, cache)

    def _is_asset(self, path: str) -> bool:
        first, slash, _ = path.partition("/")
        return first in self.directories or (not slash and "." in first)

    def _answer(self, request: Request, found: UiFile, cache: str) -> Response:
        headers = {"ETag": found.etag, "Cache-Control": cache,
                   "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                   "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
        if _matches(request.headers.get("if-none-match", ""), found.etag):
            return Response(status_code=304, headers=headers)
        return Response(found.body, headers=headers, media_type=found.content_type)
