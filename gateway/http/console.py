"""The web console's files (this package's `console/`), read once and served from memory: only
the files that exist are routes, so no path reaches the disk."""

from __future__ import annotations

from importlib import resources

from gateway.http.web import Request

TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
}
# The console runs only its own scripts and styles and talks only to this origin; agents' avatars
# are images from anywhere.
CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class Console:
    def __init__(self) -> None:
        folder = resources.files("gateway.http") / "console"
        self.files: dict[str, tuple[bytes, bytes]] = {}
        for entry in folder.iterdir():
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            if entry.is_file() and suffix in TYPES:
                self.files[entry.name] = (TYPES[suffix], entry.read_bytes())

    def has(self, name: str) -> bool:
        return name in self.files

    async def __call__(self, request: Request, name: str) -> None:
        content_type, data = self.files[name]
        extra = [(b"cache-control", b"no-cache")]
        if name.endswith(".html"):
            extra += [(b"content-security-policy", CSP), (b"x-frame-options", b"DENY")]
        await request.answer(200, content_type, data, extra)
