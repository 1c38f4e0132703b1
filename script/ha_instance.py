"""Run a real Home Assistant (the ``hass`` program) on loopback with this integration.

Used by ``script/speak`` and ``script/bench`` (and later the demo). It writes a throwaway config
folder, links ``custom_components/alicia_tts`` (and any extra custom components, such as the
benchmark's probe) into it, starts ``python -m homeassistant`` bound to 127.0.0.1, onboards an
owner account through HA's onboarding API and returns an access token. Everything stays on
loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
import contextlib
from dataclasses import dataclass
import json
import os
from pathlib import Path
import secrets
import shutil
import socket
import subprocess
import sys
import time
from typing import Any
import urllib.error
import urllib.parse
import urllib.request

REPO = Path(__file__).resolve().parent.parent
CLIENT_ID = "http://127.0.0.1/"

CONFIGURATION_YAML = """\
homeassistant:
  name: Alicia demo
  unit_system: metric
  time_zone: UTC
  country: US
  language: en
  internal_url: "http://127.0.0.1:{port}"
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
auth:
tts:
logger:
  default: warning
  logs:
    custom_components.alicia_tts: info
"""


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class HomeAssistantProcess:
    """A running ``hass`` with an owner's access token."""

    url: str
    config_dir: Path
    process: subprocess.Popen[bytes]
    token: str = ""
    username: str = "demo"
    password: str = ""

    def request(
        self, method: str, path: str, body: Any = None, *, auth: bool = True, form: bool = False
    ) -> Any:
        """Call HA's HTTP API and decode JSON (or return bytes for audio)."""
        data: bytes | None = None
        headers = {}
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = path if path.startswith("http") else self.url + path
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=120) as resp:
            raw = resp.read()
            if "json" in resp.headers.get("Content-Type", ""):
                return json.loads(raw)
            return raw

    def onboard(self) -> None:
        """Create the owner account and log in (HA's onboarding API, as the frontend does)."""
        self.password = secrets.token_urlsafe(12)
        result = self.request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": CLIENT_ID,
                "name": "Demo",
                "username": self.username,
                "password": self.password,
                "language": "en",
            },
            auth=False,
        )
        tokens = self.request(
            "POST",
            "/auth/token",
            {
                "grant_type": "authorization_code",
                "code": result["auth_code"],
                "client_id": CLIENT_ID,
            },
            auth=False,
            form=True,
        )
        self.token = tokens["access_token"]
        # The other onboarding steps are left to the user: HA's "core_config" step sets up
        # internet services (weather, radio browser), and this instance stays on loopback.

    def websocket(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one command over HA's websocket API (as the owner) and return its answer."""

        async def call() -> dict[str, Any]:
            import aiohttp  # the HA venv has it

            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(self.url + "/api/websocket") as ws,
            ):
                await ws.receive_json()  # auth_required
                await ws.send_json({"type": "auth", "access_token": self.token})
                if (await ws.receive_json()).get("type") != "auth_ok":
                    raise RuntimeError("websocket authentication failed")
                await ws.send_json({"id": 1, **message})
                answer: dict[str, Any] = await ws.receive_json()
                return answer

        return asyncio.run(call())

    def confirm_http_config(self) -> None:
        """Confirm the HTTP settings taken from configuration.yaml (HA 2026.10 and later).

        Home Assistant moves the YAML ``http:`` settings into its storage as a *pending* config
        and, unless a user confirms it within five minutes, restarts with the previous one: a
        long benchmark would lose its server mid-run. Older versions have no such step.
        """
        answer = self.websocket({"type": "http/config/promote"})
        if not answer.get("success"):  # no pending config, or a version without the step
            code = (answer.get("error") or {}).get("code")
            if code not in ("not_allowed", "unknown_command"):
                raise RuntimeError(f"cannot confirm the HTTP config: {answer}")

    def add_integration(self, domain: str, *user_inputs: dict[str, Any]) -> dict[str, Any]:
        """Run a config flow through HA's config-flow API (the UI's path): one input per form."""
        result: dict[str, Any] = self.request(
            "POST", "/api/config/config_entries/flow", {"handler": domain}
        )
        for user_input in user_inputs:
            if result.get("type") != "form":
                raise RuntimeError(f"config flow did not show a form: {result}")
            result = self.request(
                "POST", f"/api/config/config_entries/flow/{result['flow_id']}", user_input
            )
        if result.get("type") != "create_entry":
            raise RuntimeError(f"config flow did not create an entry: {result}")
        return result


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until HA's HTTP server answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Home Assistant exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/api/onboarding", timeout=2):
                return
        except urllib.error.URLError, ConnectionError, TimeoutError:
            time.sleep(0.5)
    raise TimeoutError(f"Home Assistant did not answer on {url} within {timeout:.0f} s")


@contextlib.contextmanager
def home_assistant(
    config_dir: Path,
    *,
    port: int | None = None,
    keep: bool = False,
    extra_components: Mapping[str, Path] | None = None,
    extra_config: str = "",
    confirm_http: bool = True,
    python: str | None = None,
) -> Iterator[HomeAssistantProcess]:
    """Start ``hass`` with a fresh config in ``config_dir``; stop it on exit unless ``keep``.

    ``extra_components`` maps more custom component domains to their folders (linked like
    ``alicia_tts``); ``extra_config`` is appended to ``configuration.yaml``. The HTTP settings
    are confirmed at once (HA 2026.10 and later would revert them, and restart, after five
    minutes); ``confirm_http=False`` leaves that to the caller (the test of this step).
    ``python`` runs another venv's Home Assistant (script/ha_venv); default: this one's.
    """
    port = port or free_port()
    config_dir = config_dir.resolve()
    if config_dir.exists():
        shutil.rmtree(config_dir)
    (config_dir / "custom_components").mkdir(parents=True)
    components = {"alicia_tts": REPO / "custom_components" / "alicia_tts"}
    components.update(extra_components or {})
    for domain, folder in components.items():
        (config_dir / "custom_components" / domain).symlink_to(
            folder.resolve(), target_is_directory=True
        )
    (config_dir / "configuration.yaml").write_text(
        CONFIGURATION_YAML.format(port=port) + extra_config
    )
    log = open(config_dir / "hass.stdout.log", "wb")  # noqa: SIM115 - kept open for the process
    # Run from the config folder: ``python -m`` puts the working directory on sys.path, and the
    # repository's own ``custom_components`` package would hide the config folder's.
    process = subprocess.Popen(
        [python or sys.executable, "-m", "homeassistant", "--config", str(config_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=config_dir,
    )
    url = f"http://127.0.0.1:{port}"
    ha = HomeAssistantProcess(url=url, config_dir=config_dir, process=process)
    try:
        wait_http(url, process, timeout=180)
        ha.onboard()
        if confirm_http:
            ha.confirm_http_config()
        yield ha
    finally:
        if not keep:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
