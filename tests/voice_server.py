"""A loopback voice source: the real joe voice served under the catalogue's paths.

It stands in for the upstream collection (``<base>/voices.json`` and ``<base>/<files path>``).
The test catalogue it serves is computed from the packaged joe files (size and MD5), and every
voice of it is joe's bytes under another key. Per-path rules make it misbehave on purpose:
``404``/``500`` (status), ``cut`` (Content-Length of the whole file, half of it, then the
connection is dropped), ``corrupt`` (right size, one byte flipped), ``stall`` (half, then wait
until released). ``catalog_chunk`` sends the catalogue in pieces of that many bytes, each
flushed on its own (a real server's chunked transfer); ``model``/``config`` may be replaced.
"""

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
import contextlib
from dataclasses import dataclass, field
import hashlib
from pathlib import Path
from typing import Any

from aiohttp import web

from .conftest import JOE

PREFIX = "piper-voices"


def joe_entry(key: str, model: bytes, config: bytes) -> dict[str, Any]:
    """A catalogue entry in the upstream format for joe's files under ``key``."""
    name = key.split("-")[1]
    folder = f"en/en_US/{name}/medium"
    return {
        "key": key,
        "name": name,
        "language": {
            "code": "en_US",
            "family": "en",
            "region": "US",
            "name_native": "English",
            "name_english": "English",
            "country_english": "United States",
        },
        "quality": "medium",
        "num_speakers": 1,
        "speaker_id_map": {},
        "files": {
            f"{folder}/{key}.onnx": {
                "size_bytes": len(model),
                "md5_digest": hashlib.md5(model).hexdigest(),
            },
            f"{folder}/{key}.onnx.json": {
                "size_bytes": len(config),
                "md5_digest": hashlib.md5(config).hexdigest(),
            },
            # Upstream lists it too; it is never fetched (its checksum may not match).
            f"{folder}/MODEL_CARD": {"size_bytes": 1, "md5_digest": "0" * 32},
        },
        "aliases": [],
    }


@dataclass
class VoiceServer:
    """The running server: its base URL, catalogue, rules and the paths requested."""

    base_url: str
    catalog: dict[str, Any]
    model: bytes
    config: bytes
    rules: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    catalog_body: bytes | None = None  # served instead of the catalogue when set
    catalog_chunk: int | None = None  # send the catalogue in pieces of this size
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def paths(self, key: str) -> tuple[str, str]:
        """The catalogue paths of a voice's model and config."""
        files = [p for p in self.catalog[key]["files"] if not p.endswith("MODEL_CARD")]
        model = next(p for p in files if p.endswith(".onnx"))
        config = next(p for p in files if p.endswith(".onnx.json"))
        return model, config

    def files_requested(self) -> list[str]:
        """Requested voice files (not the catalogue)."""
        return [p for p in self.requests if not p.endswith("voices.json")]


async def start_voice_server(
    joe_files: tuple[Path, Path], keys: tuple[str, ...] = (JOE,)
) -> AsyncGenerator[VoiceServer]:
    """Run the server on 127.0.0.1 (sockets must be enabled); yield it, then stop it."""
    model = joe_files[0].read_bytes()
    config = joe_files[1].read_bytes()
    catalog = {key: joe_entry(key, model, config) for key in keys}
    server = VoiceServer("", catalog, model, config)

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        server.requests.append(path)
        if path == "voices.json":
            body = server.catalog_body
            if body is None:
                body = json_bytes(server.catalog)
            if server.catalog_chunk is None:
                return web.Response(body=body, content_type="application/json")
            chunked = web.StreamResponse(headers={"Content-Type": "application/json"})
            chunked.enable_chunked_encoding()
            await chunked.prepare(request)
            for start in range(0, len(body), server.catalog_chunk):
                await chunked.write(body[start : start + server.catalog_chunk])
                await asyncio.sleep(0.005)  # each piece arrives on its own
            await chunked.write_eof()
            return chunked
        rule = server.rules.get(path, "")
        if rule.isdigit():
            return web.Response(status=int(rule), text="no")
        if path.endswith(".onnx"):
            data = server.model
        elif path.endswith(".onnx.json"):
            data = server.config
        else:
            return web.Response(status=404)
        if rule == "corrupt":
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        return await send_file(request, data, rule, server.release)

    async with serve(handle, f"/{PREFIX}/{{path:.+}}") as port:
        server.base_url = f"http://127.0.0.1:{port}/{PREFIX}/"
        try:
            yield server
        finally:
            server.release.set()


def json_bytes(data: Any) -> bytes:
    """JSON as the server sends it."""
    import json

    return json.dumps(data, ensure_ascii=False).encode()


async def send_file(
    request: web.Request,
    data: bytes,
    rule: str,
    release: asyncio.Event,
    stalled: asyncio.Event | None = None,
) -> web.StreamResponse:
    """Send ``data`` whole, or by rule ``cut`` (half, then the connection closes) or ``stall``
    (half, then wait for ``release``, setting ``stalled`` meanwhile, then close)."""
    response = web.StreamResponse(headers={"Content-Length": str(len(data))})
    await response.prepare(request)
    if rule in ("cut", "stall"):
        await response.write(data[: len(data) // 2])
        if rule == "stall":
            if stalled is not None:
                stalled.set()
            await release.wait()
        assert request.transport is not None
        request.transport.close()
        return response
    await response.write(data)
    await response.write_eof()
    return response


@contextlib.asynccontextmanager
async def serve(
    handle: Callable[[web.Request], Awaitable[web.StreamResponse]], route: str
) -> AsyncGenerator[int]:
    """Serve GET ``route`` with ``handle`` on 127.0.0.1; yield the port, then stop."""
    app = web.Application()
    app.router.add_get(route, handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()
