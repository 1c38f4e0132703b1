"""The voice catalogue: the shipped file, parsing, the refreshed copy, fetching on loopback."""

from collections.abc import AsyncGenerator
import copy
import hashlib
import json
from pathlib import Path
from typing import Any
from unittest.mock import patch

import aiohttp
import pytest

from custom_components.alicia_tts import catalog
from custom_components.alicia_tts.catalog import (
    DEFAULT_CATALOG_URL,
    SHIPPED_CATALOG,
    CatalogError,
    async_fetch_catalog,
    file_url,
    format_size,
    load_catalog,
    parse_catalog,
    parse_voice,
    read_catalog,
    redact_url,
    save_catalog,
    voice_language,
)
from custom_components.alicia_tts.voices import discover_voices

from .conftest import JOE
from .voice_server import VoiceServer, json_bytes, start_voice_server


@pytest.fixture
async def server(socket_enabled: None, joe_files: tuple[Path, Path]) -> AsyncGenerator[VoiceServer]:
    """The loopback voice source."""
    async for running in start_voice_server(joe_files):
        yield running


def test_shipped_catalogue_is_upstream_format(joe_files: tuple[Path, Path]) -> None:
    """The shipped voices.json is the upstream file; joe's entry matches the packaged voice."""
    raw = json.loads(SHIPPED_CATALOG.read_text(encoding="utf-8"))
    entry = raw[JOE]
    assert set(entry) == {
        "key",
        "name",
        "language",
        "quality",
        "num_speakers",
        "speaker_id_map",
        "files",
        "aliases",
    }
    voices = load_catalog()
    assert len(voices) == len(raw) > 100  # every upstream entry is usable
    joe = voices[JOE]
    assert (joe.name, joe.language, joe.quality) == ("Joe", "en-US", "medium")
    assert joe.language_name == "English (United States)"
    assert joe.display_name == "Joe (en-US, medium)"
    assert joe.model.path == "en/en_US/joe/medium/en_US-joe-medium.onnx"
    for file, path in ((joe.model, joe_files[0]), (joe.config, joe_files[1])):
        data = path.read_bytes()
        assert (file.size, file.md5) == (len(data), hashlib.md5(data).hexdigest())
    assert joe.files == (joe.config, joe.model)
    assert joe.size == joe.model.size + joe.config.size
    # Non-ASCII keys survive (and are quoted in URLs).
    assert "pt_PT-tugão-medium" in voices
    # A multi-speaker voice keeps its speakers.
    multi = next(v for v in voices.values() if v.num_speakers > 1)
    assert len(multi.speaker_id_map) == multi.num_speakers


GOOD: dict[str, Any] = {
    "key": "de_DE-x-low",
    "name": "x_y",
    "language": {"code": "de_DE", "name_english": "German"},
    "quality": "low",
    "files": {
        "a/de_DE-x-low.onnx": {"size_bytes": 10, "md5_digest": "A" * 32},
        "a/de_DE-x-low.onnx.json": {"size_bytes": 5, "md5_digest": "b" * 32},
    },
}


def bad(path: str, value: Any) -> dict[str, Any]:
    """GOOD with one value replaced (path: keys joined by '/')."""
    entry = copy.deepcopy(GOOD)
    *parents, last = path.split("|")
    target = entry
    for part in parents:
        target = target[part]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return entry


def test_parse_voice() -> None:
    """A minimal entry is enough; the names are made readable."""
    voice = parse_voice("de_DE-x-low", GOOD)
    assert (voice.name, voice.language, voice.language_name) == ("X Y", "de-DE", "German")
    assert voice.model.md5 == "a" * 32
    assert voice.model.name == "de_DE-x-low.onnx"
    assert voice.num_speakers == 1
    no_language = parse_voice("de_DE-x-low", bad("language", None))
    assert (no_language.language, no_language.language_name) == ("de-DE", "de_DE")
    assert parse_voice("de_DE-x-low", bad("quality", None)).quality is None


@pytest.mark.parametrize(
    ("key", "entry"),
    [
        ("de_DE-x-low", "not an object"),
        (".hidden", GOOD),
        ("a/b", GOOD),
        ("other-key", GOOD),  # "key" inside differs
        ("de_DE-x-low", bad("files", None)),
        ("de_DE-x-low", bad("files", [])),
        ("de_DE-x-low", bad("files|a/de_DE-x-low.onnx", None)),
        ("de_DE-x-low", bad("files|a/de_DE-x-low.onnx.json", None)),
        ("de_DE-x-low", bad("files|a/de_DE-x-low.onnx|size_bytes", 0)),
        ("de_DE-x-low", bad("files|a/de_DE-x-low.onnx|size_bytes", True)),
        ("de_DE-x-low", bad("files|a/de_DE-x-low.onnx|size_bytes", "10")),
        ("de_DE-x-low", bad("files|a/de_DE-x-low.onnx|md5_digest", "xyz")),
        ("de_DE-x-low", bad("files|a/de_DE-x-low.onnx|md5_digest", None)),
        ("de_DE-x-low", bad("num_speakers", "many")),
        ("de_DE-x-low", bad("speaker_id_map", {"a": "b"})),
        ("de_DE-x-low", bad("language", "German")),
    ],
)
def test_unusable_entries(key: str, entry: Any) -> None:
    """Malformed entries are refused (and skipped by parse_catalog)."""
    with pytest.raises(ValueError, match="unusable"):
        parse_voice(key, entry)
    assert parse_catalog({key: entry}) == {}


@pytest.mark.parametrize("path", ["/abs/de_DE-x-low.onnx", "a/../de_DE-x-low.onnx"])
def test_unsafe_paths(path: str) -> None:
    """Paths that leave the collection are refused."""
    entry = copy.deepcopy(GOOD)
    entry["files"][path] = entry["files"].pop("a/de_DE-x-low.onnx")
    with pytest.raises(ValueError, match="unsafe path"):
        parse_voice("de_DE-x-low", entry)
    entry["files"] = {
        "a\\de_DE-x-low.onnx": {"size_bytes": 1, "md5_digest": "a" * 32},
        **GOOD["files"],
    }
    # A backslash path with a different name is just another file; the right one is used.
    assert parse_voice("de_DE-x-low", GOOD).model.path == "a/de_DE-x-low.onnx"


def test_catalogue_not_an_object(tmp_path: Path) -> None:
    """A catalogue must be an object; an unreadable file is an error."""
    with pytest.raises(CatalogError) as caught:
        parse_catalog([GOOD])
    assert caught.value.key == "catalog_invalid"
    with pytest.raises(CatalogError, match="cannot read"):
        read_catalog(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(CatalogError):
        read_catalog(tmp_path / "broken.json")


def test_refreshed_catalogue_wins(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A refreshed copy updates the shipped catalogue key by key; a broken one is ignored."""
    cached = tmp_path / "alicia" / "catalog.json"
    assert load_catalog(cached) == load_catalog()  # no refreshed copy yet
    changed = copy.deepcopy(json.loads(SHIPPED_CATALOG.read_text(encoding="utf-8"))[JOE])
    changed["quality"] = "high"
    save_catalog(cached, json.dumps({JOE: changed, "de_DE-x-low": GOOD}).encode())
    voices = load_catalog(cached)
    assert voices[JOE].quality == "high"
    assert "de_DE-x-low" in voices
    assert "pt_PT-tugão-medium" in voices  # still from the shipped one
    assert [p.name for p in cached.parent.iterdir()] == ["catalog.json"]  # no temp file left

    cached.write_text("[]")
    assert load_catalog(cached) == load_catalog()
    assert "Ignoring voice catalogue" in caplog.text
    with patch.object(catalog, "SHIPPED_CATALOG", tmp_path / "gone.json"):
        assert load_catalog() == {}


def test_save_catalog_failure_leaves_no_temp(tmp_path: Path) -> None:
    """A failed write removes its temp file and keeps the old copy."""
    cached = tmp_path / "alicia" / "catalog.json"
    cached.parent.mkdir()
    cached.write_text("{}")
    with (
        patch("os.fsync", side_effect=OSError(28, "full")),
        pytest.raises(OSError, match="full"),
    ):
        save_catalog(cached, b"{}")
    assert [p.name for p in cached.parent.iterdir()] == ["catalog.json"]


def test_file_url() -> None:
    """File paths are appended to the base folder and quoted."""
    assert str(file_url(DEFAULT_CATALOG_URL, "en/a.onnx")) == (
        "https://huggingface.co/rhasspy/piper-voices/resolve/main/en/a.onnx"
    )
    assert str(file_url("http://127.0.0.1:1/x", "pt/tugão.onnx")) == (
        "http://127.0.0.1:1/x/pt/tug%C3%A3o.onnx"
    )


def test_format_size() -> None:
    """Sizes read like a file manager's."""
    assert format_size(999) == "999 B"
    assert format_size(4794) == "4.8 kB"
    assert format_size(63_206_088) == "63.2 MB"
    assert format_size(2_500_000_000) == "2.5 GB"


def test_voice_language(tmp_path: Path) -> None:
    """Installed config first, then the catalogue, then the key, then en-US."""
    installed = discover_voices(tmp_path)
    voices = load_catalog()
    assert voice_language(JOE, installed, {}) == "en-US"
    assert voice_language("de_DE-thorsten-medium", {}, voices) == "de-DE"
    assert voice_language("fr_FR-nobody-low", {}, {}) == "fr-FR"
    assert voice_language("my-voice", {}, {}) == "en-US"


async def test_fetch_catalogue(server: VoiceServer) -> None:
    """The catalogue is fetched from <base>/voices.json; errors are typed."""
    async with aiohttp.ClientSession() as session:
        raw, voices = await async_fetch_catalog(session, server.base_url)
        assert list(voices) == [JOE]
        assert json.loads(raw) == server.catalog
        # The base URL without its trailing slash is the same folder.
        await async_fetch_catalog(session, server.base_url.rstrip("/"))

        server.rules["voices.json"] = "404"
        server.catalog_body = b"{}"
        with pytest.raises(CatalogError) as caught:
            await async_fetch_catalog(session, server.base_url + "missing/")
        assert caught.value.key == "catalog_unreachable"
        assert "HTTP 404" in caught.value.placeholders["error"]

        for body, match in (
            (b"not json", "not JSON"),
            (b"{}", "no usable voice"),
            (json_bytes({"x": 1}), "no usable voice"),
            (b"[]", "not a JSON object"),
        ):
            server.catalog_body = body
            with pytest.raises(CatalogError, match=match) as caught:
                await async_fetch_catalog(session, server.base_url)
            assert caught.value.key == "catalog_invalid"

        server.catalog_body = b"{" + b" " * 100 + b"}"
        with (
            patch.object(catalog, "MAX_CATALOG_BYTES", 50),
            pytest.raises(CatalogError, match="too large"),
        ):
            await async_fetch_catalog(session, server.base_url)

        with pytest.raises(CatalogError) as caught:
            await async_fetch_catalog(session, "http://127.0.0.1:9/")
        assert caught.value.key == "catalog_unreachable"
        assert caught.value.placeholders["url"] == "http://127.0.0.1:9/voices.json"


async def test_fetch_real_size_catalogue_in_pieces(server: VoiceServer) -> None:
    """The real upstream voices.json (~230 kB) arriving in 8 kB pieces is read to its end."""
    shipped = SHIPPED_CATALOG.read_bytes()
    assert len(shipped) > 200_000
    server.catalog_body = shipped
    server.catalog_chunk = 8 * 1024
    async with aiohttp.ClientSession() as session:
        raw, voices = await async_fetch_catalog(session, server.base_url)
    assert raw == shipped
    assert len(voices) == len(json.loads(shipped))
    server.catalog_body = b"{" + b" " * 100 + b"}"  # chunked and too large: still refused
    with (
        patch.object(catalog, "MAX_CATALOG_BYTES", 50),
        pytest.raises(CatalogError, match="too large"),
    ):
        async with aiohttp.ClientSession() as session:
            await async_fetch_catalog(session, server.base_url)


async def test_credentials_never_shown(
    server: VoiceServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A voice source URL with credentials: used, but never in errors or log lines."""
    with_credentials = server.base_url.replace("http://", "http://user:s3cr3t@")
    assert redact_url(with_credentials) == server.base_url.replace("http://", "http://***@")
    assert (
        redact_url("see http://a:b@h/x and https://c@h2/")
        == "see http://***@h/x and https://***@h2/"
    )
    async with aiohttp.ClientSession() as session:
        raw, _ = await async_fetch_catalog(session, with_credentials)
        assert raw
        server.rules["voices.json"] = "404"
        server.catalog_body = b"{}"
        with pytest.raises(CatalogError) as caught:
            await async_fetch_catalog(session, with_credentials + "missing/")
        assert "s3cr3t" not in str(caught.value)
        assert "s3cr3t" not in str(caught.value.placeholders)
        with pytest.raises(CatalogError) as caught:
            await async_fetch_catalog(session, "http://user:s3cr3t@127.0.0.1:9/")
        assert "s3cr3t" not in str(caught.value.placeholders)
    assert "s3cr3t" not in caplog.text
