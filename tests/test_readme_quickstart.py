"""The README's "Quick start from a shell", replayed against a real Home Assistant.

The commands are read from the README's code block, never copied here: only ``HA`` (the
address of the test's Home Assistant HTTP server) and ``TOKEN`` (a real long-lived access
token) are replaced. The block is replayed twice: by a small interpreter of exactly the shell
and ``curl``/``jq`` features it uses (with aiohttp; anything else fails the test, so the README
cannot drift into commands nobody checked), and by ``bash`` with the real ``curl`` and ``jq``
(skipped where they are not installed). Both run against Home Assistant's real HTTP server: the
REST API with the token, then the audio URLs the responses name; ``say`` plays on a loopback
Sonos speaker (tests/sonos_double/) through Home Assistant's Sonos device registry entries.
"""

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import timedelta
import json
import os
from pathlib import Path
import re
import shlex
import shutil
from typing import Any

import aiohttp
from homeassistant.auth.models import TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.alicia_tts.announce import async_get_playback
from custom_components.alicia_tts.const import (
    CONF_FALLBACK_ENGINES,
    CONF_SPEAKER_BASE_URL,
    CONF_VOICE,
    DOMAIN,
)

from .audio import parse_wav
from .conftest import JOE
from .engines import MP3
from .sonos_double import FakeHousehold
from .test_announce import register_sonos

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Quick start from a shell"


def quick_start() -> tuple[str, list[str]]:
    """The section's shell block and the lines of its response examples."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end > 0 else None]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, flags=re.DOTALL)
    shell = [body for lang, body in blocks if lang == "bash"]
    examples = [body for lang, body in blocks if lang == "json"]
    assert len(shell) == 1, "the quick start has one bash block"
    assert len(examples) == 1, "the quick start has one block of example responses"
    return shell[0], [line for line in examples[0].splitlines() if line.strip()]


def substitute(script: str, host: str, token: str) -> str:
    """The block with only its HA and TOKEN values replaced."""
    script, hosts = re.subn(r"(?m)^HA=\S+", f"HA={host}", script)
    script, tokens = re.subn(r"(?m)^TOKEN=\S+", f"TOKEN={token}", script)
    assert hosts == 1
    assert tokens == 1
    return script


def commands(script: str) -> list[str]:
    """Logical lines: continuations joined, blank and comment lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", script)
    return [
        line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


@dataclass
class Replay:
    """What the replay did: every HTTP exchange, the printed output, the written files."""

    folder: Path
    variables: dict[str, str] = field(default_factory=dict)
    exchanges: list[tuple[str, str, int, bytes]] = field(default_factory=list)
    printed: list[bytes] = field(default_factory=list)

    def expand(self, word: str) -> str:
        """$NAME and ${NAME} from the variables set so far (unknown ones fail)."""

        def value(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            assert name in self.variables, f"${name} is used before it is set"
            return self.variables[name]

        return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, word)

    async def curl(self, session: aiohttp.ClientSession, words: list[str]) -> bytes:
        """Run a curl command line: -s, -f, -X, -H, -d, -o and one URL."""
        assert words[0] == "curl"
        method, headers, data, out, url, fail = "GET", {}, None, None, None, False
        args = iter(words[1:])
        for arg in args:
            if (
                arg.startswith("-")
                and not arg.startswith("--")
                and len(arg) > 2
                and all(flag in "sf" for flag in arg[1:])
            ):
                fail = fail or "f" in arg
            elif arg in ("-s", "--silent"):
                pass
            elif arg in ("-f", "--fail"):
                fail = True
            elif arg in ("-X", "--request"):
                method = next(args)
            elif arg in ("-H", "--header"):
                name, _, header = next(args).partition(":")
                headers[name.strip()] = header.strip()
            elif arg in ("-d", "--data"):
                data = next(args).encode()
                method = "POST" if method == "GET" else method
            elif arg in ("-o", "--output"):
                out = next(args)
            elif not arg.startswith("-") and url is None:
                url = arg
            else:
                raise AssertionError(f"curl {arg!r} is not replayed by this test: check it")
        assert url is not None, "curl without a URL"
        async with session.request(method, url, headers=headers, data=data) as response:
            body = await response.read()
            self.exchanges.append((method, url, response.status, body))
            if fail:
                assert response.status < 400, f"{method} {url}: {response.status} {body!r}"
        if out is not None:
            (self.folder / out).write_bytes(body)
            return b""
        return body

    async def run(self, script: str) -> None:
        """Replay the block, line by line."""
        async with aiohttp.ClientSession() as session:
            for line in commands(script):
                assignment = re.fullmatch(r"(\w+)=\$\((.*)\)", line.strip())
                if assignment is not None:
                    name, inner = assignment.groups()
                    self.variables[name] = (await self.pipeline(session, inner)).decode().strip()
                    continue
                plain = re.fullmatch(r"(\w+)=(\S+)", line.strip())
                if plain is not None:
                    self.variables[plain.group(1)] = self.expand(plain.group(2))
                    continue
                self.printed.append(await self.pipeline(session, line))

    async def pipeline(self, session: aiohttp.ClientSession, line: str) -> bytes:
        """``curl ...`` optionally piped into ``jq -r <path>``."""
        words = [self.expand(word) for word in shlex.split(line, comments=True)]
        stages: list[list[str]] = [[]]
        for word in words:
            if word == "|":
                stages.append([])
            else:
                stages[-1].append(word)
        output = await self.curl(session, stages[0])
        for stage in stages[1:]:
            assert stage[:2] == ["jq", "-r"], f"{stage} is not replayed by this test"
            assert len(stage) == 3
            value: Any = json.loads(output)
            for key in stage[2].strip(".").split("."):
                value = value[key]
            output = (value if isinstance(value, str) else json.dumps(value)).encode() + b"\n"
        return output


@pytest.fixture
async def long_lived_token(hass: HomeAssistant, hass_admin_user: MockUser) -> str:
    """A long-lived access token, as the profile page creates one."""
    refresh = await hass.auth.async_create_refresh_token(
        hass_admin_user,
        client_name="README quick start",
        token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
        access_token_expiration=timedelta(days=3650),
    )
    return hass.auth.async_create_access_token(refresh)


@pytest.fixture
async def sonos_household(sonos_loopback: None) -> AsyncGenerator[FakeHousehold]:
    """One loopback Sonos speaker, Kitchen, on an address of its own (127.0.0.50)."""
    async with FakeHousehold.create(1, first_ip=50, names=("Kitchen",)) as household:
        yield household


@pytest.fixture
async def home_assistant(
    hass: HomeAssistant,
    setup_ha: None,
    engines: dict[str, Any],
    sonos_household: FakeHousehold,
    hass_client_no_auth: ClientSessionGenerator,
) -> str:
    """Alicia with a fallback engine and a Sonos Kitchen; the base URL of HA's HTTP server."""
    assert await async_setup_component(hass, "api", {})
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Joe (en-US, medium)",
        data={CONF_VOICE: JOE},
        unique_id=JOE,
        options={CONF_FALLBACK_ENGINES: ["tts.working"]},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    # HA's HTTP app serves for real once the client starts it (views are registered by then);
    # speakers, and the quick start's audio URLs, use that address.
    client = await hass_client_no_auth()
    base = f"http://127.0.0.1:{client.port}"
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_SPEAKER_BASE_URL: base}
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    playback = async_get_playback(hass)
    playback.realtime = 0  # the loopback speakers play instantly
    playback.poll_interval = 0.05
    for fake in sonos_household.speakers:
        register_sonos(hass, fake.name, fake.uid, fake.ip)
    return base


def check_results(
    folder: Path,
    said: dict[str, Any],
    examples: list[str],
    engines: dict[str, Any],
    household: FakeHousehold,
) -> None:
    """What the three documented steps must have produced."""
    wav = parse_wav((folder / "alicia.wav").read_bytes())
    assert wav.rms > 0.05
    assert 0.5 < wav.duration < 4.0
    assert (folder / "fallback.mp3").read_bytes() == MP3  # the fallback engine's own audio
    assert engines["working"].messages == ["Hello from the fallback engine."]
    response = said["service_response"]
    assert response["speakers"] == ["media_player.kitchen"]
    assert response["errors"] == {}
    assert response["duration"] > 0.5
    played = household["Kitchen"].played
    assert len(played) == 1
    assert played[0].ok
    assert played[0].volume == 30
    # The documented responses have the real responses' shape.
    url_example, say_example = (json.loads(line) for line in examples)
    assert set(url_example) == set(said) == {"changed_states", "service_response"}
    assert set(say_example["service_response"]) == set(response)
    assert url_example["service_response"]["url"].endswith(".wav")
    assert set(url_example["service_response"]) == {"url", "format", "expires_in"}


async def test_quick_start_replayed(
    hass: HomeAssistant,
    home_assistant: str,
    long_lived_token: str,
    engines: dict[str, Any],
    sonos_household: FakeHousehold,
    tmp_path: Path,
) -> None:
    """Every documented request, replayed with aiohttp."""
    script, examples = quick_start()
    replay = Replay(tmp_path)
    await replay.run(substitute(script, home_assistant, long_lived_token))
    posts = [(method, url) for method, url, _, _ in replay.exchanges if method == "POST"]
    assert posts == [
        ("POST", f"{home_assistant}/api/services/alicia_tts/audio_url?return_response"),
        ("POST", f"{home_assistant}/api/services/alicia_tts/audio_url?return_response"),
        ("POST", f"{home_assistant}/api/services/alicia_tts/say?return_response"),
    ]
    fetched = [url for method, url, _, _ in replay.exchanges if method == "GET"]
    assert len(fetched) == 2
    assert all(url.startswith(f"{home_assistant}/api/alicia_tts/audio/") for url in fetched)
    assert replay.variables["URL"] == fetched[-1]
    check_results(tmp_path, json.loads(replay.printed[-1]), examples, engines, sonos_household)


@pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("jq") is None, reason="needs curl and jq"
)
async def test_quick_start_in_bash(
    hass: HomeAssistant,
    home_assistant: str,
    long_lived_token: str,
    engines: dict[str, Any],
    sonos_household: FakeHousehold,
    tmp_path: Path,
) -> None:
    """The same block run by bash with the real curl and jq."""
    script, examples = quick_start()
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        substitute(script, home_assistant, long_lived_token),
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, stderr.decode()
    check_results(tmp_path, json.loads(stdout), examples, engines, sonos_household)
