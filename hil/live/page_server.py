"""The live view's web server (aiohttp): the page, its static assets, and ``api/state``, the session as JSON.

The page (``static/index.html``) polls ``api/state`` every ``interval_s`` and redraws with Plotly.
Served on loopback by default, and then only to requests addressed to a loopback name or address. On
any other address every request must carry the token printed with the URL (``?token=…``; the page's
first answer also sets it as a same-site cookie, so the assets and the polls are accepted without it
in their URLs); others are refused with 403.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import json
import secrets
import socket
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from hil.live.feed import SessionFeed
from instruments.failures import UserFacingError

STATIC = Path(str(resources.files("hil.live") / "static"))
COOKIE = "hil_watch_token"
API = "/api/state"


class LiveViewError(UserFacingError):
    """The live view cannot be served as asked (the message says why and what to do)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(16)


def token_guard(token: str) -> Callable[..., Any]:
    """Middleware refusing every request that carries neither the token nor its cookie."""

    @web.middleware
    async def guard(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        given = request.query.get("token", "")
        in_query = secrets.compare_digest(given.encode(), token.encode())
        if not (in_query or secrets.compare_digest(request.cookies.get(COOKIE, "").encode(), token.encode())):
            raise web.HTTPForbidden(text="hil watch: this address needs the token printed with the page's URL "
                                         "(…?token=…)\n")
        response = await handler(request)
        if in_query:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    return guard


def loopback_host_guard() -> Callable[..., Any]:
    """Middleware answering only requests addressed to this machine by its loopback name (a page of another
    site cannot reach the view through a name of its own that resolves to 127.0.0.1: DNS rebinding)."""

    @web.middleware
    async def guard(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if not is_loopback((request.url.host or "").strip("[]")):
            raise web.HTTPForbidden(text="hil watch: served to this machine only; open the printed URL\n")
        return await handler(request)

    return guard


class StateCache:
    """One read of the session per half interval, however many pages poll; reads run off the event loop."""

    def __init__(self, feed: SessionFeed, interval_s: float) -> None:
        self.feed, self.interval_s = feed, interval_s
        self.lock = asyncio.Lock()
        self.read_at = -float("inf")
        self.state: dict[str, Any] = {}

    async def get(self) -> dict[str, Any]:
        async with self.lock:
            if time.monotonic() - self.read_at >= self.interval_s / 2:
                self.state = await asyncio.to_thread(self.feed.snapshot)
                self.read_at = time.monotonic()
            return {**self.state, "interval_s": self.interval_s}


def make_app(feed: SessionFeed, interval_s: float, token: str | None = None) -> web.Application:
    """The live view of ``feed``'s session; with ``token``, only requests carrying it are served."""
    app = web.Application(middlewares=[token_guard(token) if token else loopback_host_guard()])
    cache = StateCache(feed, interval_s)
    dumps = functools.partial(json.dumps, allow_nan=False)

    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def state(request: web.Request) -> web.Response:
        return web.json_response(await cache.get(), dumps=dumps, headers={"Cache-Control": "no-store"})

    app.router.add_get("/", index)
    app.router.add_get(API, state)
    app.router.add_static("/static/", STATIC)
    return app


def page_url(host: str, port: int, token: str | None) -> str:
    if host in ("0.0.0.0", "::", ""):  # every interface: name this machine as others reach it
        host = socket.gethostname()
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


async def serve(app: web.Application, host: str, port: int, token: str | None,
                announce: Callable[[str], None]) -> None:
    """Serve ``app`` until cancelled (Ctrl-C); ``announce`` gets the page's URL once the port is bound."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise LiveViewError(f"port {port} on {host} is in use; choose another with --port (0: any free "
                                "port)") from None
        raise LiveViewError(f"cannot serve on {host}:{port} ({exc.strerror or exc}); check --host and --port") \
            from None
    bound = runner.addresses[0][1] if runner.addresses else port
    announce(page_url(host, bound, token))
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def watch(feed: SessionFeed, host: str = "127.0.0.1", port: int = 8765, interval_s: float = 1.0,
          announce: Callable[[str], None] = print) -> None:
    """Serve the live view of ``feed``'s session until Ctrl-C (a token unless ``host`` is loopback)."""
    token = None if is_loopback(host) else new_token()
    app = make_app(feed, interval_s, token)
    asyncio.run(serve(app, host, port, token, announce))
