"""The operator console: one static page over the operator routes, with its script and
style sheet. Loading it needs no token; the page sends the operator's token with each call
it makes to the API."""

from __future__ import annotations

from pathlib import Path

from faust.web import Request, Response

from app.domain.errors import NotFound
from app.faust_app import app

from .errors import ApiView

STATIC = Path(__file__).with_name("static")
#: The page's files (read once) and their types; nothing else is served from the folder.
ASSETS = {name: ((STATIC / name).read_text(encoding="utf-8"), kind) for name, kind in (
    ("console.html", "text/html"), ("console.js", "text/javascript"),
    ("console.css", "text/css"))}
#: Script, style and calls from this origin only: no inline code, no other host, no frame.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def console_link(base_url: str, token: str) -> str:
    """The console, signed in with `token` (the page takes it out of the address bar)."""
    return f"{base_url.rstrip('/')}/console#token={token}"


def asset(name: str) -> tuple[str, dict[str, str]]:
    if name not in ASSETS:
        raise NotFound(f"no console file {name!r}")
    text, kind = ASSETS[name]
    return text, {**HEADERS, "Content-Type": f"{kind}; charset=utf-8"}


@app.page("/console")
class Console(ApiView):
    async def get(self, request: Request) -> Response:
        text, headers = asset("console.html")
        return self.text(text, headers=headers)


@app.page("/console/{name}")
class ConsoleAsset(ApiView):
    async def get(self, request: Request, name: str) -> Response:
        text, headers = asset(name)
        return self.text(text, headers=headers)
