"""A loopback stand-in for the project's GitHub release with the two espeak-ng assets.

It serves the real files under ``/releases/download/v<version>/<asset>``: the npm package
``espeak-ng`` 1.0.2 as ``script/fetch_espeak_npm`` fetched and verified it
(``.cache/espeak-npm/espeak-ng-1.0.2.tgz``), and the data archive that ``script/espeak_data.py
--tar`` builds from the pinned piper-tts wheel. Per-asset rules make it misbehave on purpose:
``404``/``500`` (status), ``cut`` (Content-Length of the whole file, half of it, then the
connection is dropped), ``corrupt`` (one byte flipped), ``big`` (more bytes than pinned),
``stall`` (half, then wait until released).
"""

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
import importlib.util
from pathlib import Path
from types import ModuleType

from aiohttp import web

from .voice_server import send_file, serve

ROOT = Path(__file__).resolve().parents[1]
NPM_TARBALL = ROOT / ".cache" / "espeak-npm" / "espeak-ng-1.0.2.tgz"
VERSION = "0.1.0"


def espeak_data_script() -> ModuleType:
    """script/espeak_data.py as a module."""
    spec = importlib.util.spec_from_file_location("espeak_data", ROOT / "script" / "espeak_data.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class ReleaseServer:
    """The running server: its download folder URL, the assets, rules, requests."""

    base_url: str
    assets: dict[str, bytes]
    rules: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


async def start_release_server(assets: dict[str, bytes]) -> AsyncGenerator[ReleaseServer]:
    """Serve ``assets`` on 127.0.0.1 (sockets must be enabled); yield the server, then stop."""
    server = ReleaseServer("", assets)

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        server.requests.append(name)
        rule = server.rules.get(name, "")
        if rule.isdigit():
            return web.Response(status=int(rule), text="no")
        if name not in server.assets:
            return web.Response(status=404)
        data = server.assets[name]
        if rule == "corrupt":
            data = data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]
        elif rule == "big":
            data += b"\0" * 4096
        return await send_file(request, data, rule, server.release, server.stalled)

    async with serve(handle, f"/releases/download/v{VERSION}/{{name}}") as port:
        server.base_url = f"http://127.0.0.1:{port}/releases/download/v{VERSION}/"
        try:
            yield server
        finally:
            server.release.set()
