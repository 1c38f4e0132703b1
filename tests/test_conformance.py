"""Tests for script/check_conformance.py: the real repository, and broken copies of it.

Every rule is shown to fail: each case below breaks one thing in a clean copy of the repository
and asserts the exact check reports it. The clean copy itself must pass every check.
"""

from collections.abc import Callable
import importlib.util
import json
from pathlib import Path
import shutil
import struct
import subprocess
import sys
from typing import TYPE_CHECKING, Any
import zlib

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "script" / "check_conformance.py"
DOMAIN = "alicia_tts"
INTEGRATION = f"custom_components/{DOMAIN}"


def _load_checker() -> Any:
    """Import the script by path: script/ is not a package."""
    spec = importlib.util.spec_from_file_location("check_conformance", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from script import check_conformance as cc
else:
    cc = _load_checker()

CHECK_NAMES = [check.__name__ for check in cc.CHECKS]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Override the conftest fixture: these tests read files and need no Home Assistant."""


# --- helpers -----------------------------------------------------------------------------------


def png_bytes(width: int, height: int, *, crc_offset: int = 0) -> bytes:
    """A PNG signature and IHDR chunk (and IEND) for an image of the given size."""

    def chunk(kind: bytes, body: bytes, extra: int = 0) -> bytes:
        crc = (zlib.crc32(kind + body) + extra) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return cc.PNG_SIGNATURE + chunk(b"IHDR", header, crc_offset) + chunk(b"IEND", b"")


def read_json(path: Path) -> Any:
    """Parsed JSON."""
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Write JSON the way the repository does."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def edit_json(path: Path, change: Callable[[Any], None]) -> None:
    """Change a JSON file in place."""
    data = read_json(path)
    change(data)
    write_json(path, data)


def edit_translations(repo: Path, change: Callable[[Any], None]) -> None:
    """Apply the same change to strings.json and translations/en.json (so they stay equal)."""
    for name in ("strings.json", "translations/en.json"):
        edit_json(repo / INTEGRATION / name, change)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the repository's checked files that passes every check."""
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copytree(
        REPO / "custom_components",
        copy / "custom_components",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return copy


def run(check: str, root: Path) -> list[str]:
    """Run one check by name."""
    problems: list[str] = getattr(cc, check)(root)
    return problems


def assert_reports(problems: list[str], *fragments: str) -> None:
    """Every fragment appears in one of the problem lines."""
    for fragment in fragments:
        assert any(fragment in problem for problem in problems), (fragment, problems)


# --- the real repository -------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_real_repository(check: str) -> None:
    """The repository passes each check."""
    assert run(check, REPO) == []


def test_clean_copy_passes(repo: Path) -> None:
    """The baseline for the failure cases: a clean copy has no problems at all."""
    assert cc.check_all(repo) == []


# --- every rule fails on a crafted bad input ---------------------------------------------------

type Breaker = Callable[[Path], None]


def _write(relative: str, content: str | bytes) -> Breaker:
    def breaker(repo: Path) -> None:
        path = repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")

    return breaker


def _delete(relative: str) -> Breaker:
    def breaker(repo: Path) -> None:
        (repo / relative).unlink()

    return breaker


def _requirements(*requirements: str) -> Breaker:
    def breaker(repo: Path) -> None:
        edit_json(
            repo / INTEGRATION / "manifest.json",
            lambda data: data.update(requirements=list(requirements)),
        )

    return breaker


def _translations(change: Callable[[Any], None]) -> Breaker:
    def breaker(repo: Path) -> None:
        edit_translations(repo, change)

    return breaker


def _en_only(repo: Path) -> None:
    def change(data: Any) -> None:
        data["config"]["abort"]["already_configured"] = "Different text."

    edit_json(repo / INTEGRATION / "translations/en.json", change)


def _register_service(repo: Path) -> None:
    (repo / INTEGRATION / "services.yaml").unlink(missing_ok=True)
    path = repo / INTEGRATION / "__init__.py"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + '\n\ndef _x(hass):\n    hass.services.async_register("a", "b", _x)\n')


def _flow_field_without_description(data: Any) -> None:
    data["config"]["step"]["user"]["data"]["extra"] = "Extra"


def _description_without_field(data: Any) -> None:
    data["config"]["step"]["user"]["data_description"]["ghost"] = "Ghost"


def _section_field_without_description(data: Any) -> None:
    step = {"data": {}, "sections": {"more": {"data": {"x": "X"}, "data_description": {}}}}
    data["options"]["step"]["extra_step"] = step


def _description_not_object(data: Any) -> None:
    data["config"]["step"]["user"]["data_description"] = "text"


def _orphan_service(data: Any) -> None:
    data["services"] = {"gone": {"name": "Gone", "description": "Nothing."}}


# (check, how to break the copy, a fragment the check must report)
FAILURES: dict[str, tuple[str, Breaker, str]] = {
    # translations
    "strings-not-json": (
        "check_translations",
        _write(f"{INTEGRATION}/strings.json", "{"),
        "strings.json: is not valid JSON",
    ),
    "strings-not-object": (
        "check_translations",
        _write(f"{INTEGRATION}/strings.json", "[]"),
        "strings.json: must be a JSON object",
    ),
    "en-missing": (
        "check_translations",
        _delete(f"{INTEGRATION}/translations/en.json"),
        "en.json: missing",
    ),
    "en-differs": (
        "check_translations",
        _en_only,
        "differs from strings.json at config.abort.already_configured",
    ),
    "strings-no-data-description": (
        "check_translations",
        _translations(_flow_field_without_description),
        "config.step.user.data.extra has no data_description.extra",
    ),
    "strings-orphan-data-description": (
        "check_translations",
        _translations(_description_without_field),
        "data_description.ghost describes a field that is not in data",
    ),
    "strings-section-no-data-description": (
        "check_translations",
        _translations(_section_field_without_description),
        "options.step.extra_step.sections.more.data.x has no data_description.x",
    ),
    "strings-data-description-not-object": (
        "check_translations",
        _translations(_description_not_object),
        "config.step.user.data_description must be an object",
    ),
    # services.yaml
    "services-registered-without-yaml": (
        "check_services",
        _register_service,
        "registers service actions but",
    ),
    "services-not-yaml": (
        "check_services",
        _write(f"{INTEGRATION}/services.yaml", "speak: [\n"),
        "is not valid YAML",
    ),
    "services-not-mapping": (
        "check_services",
        _write(f"{INTEGRATION}/services.yaml", "- speak\n"),
        "must be a mapping of services",
    ),
    "services-not-slug": (
        "check_services",
        _write(f"{INTEGRATION}/services.yaml", "Speak Now:\n"),
        "service name 'Speak Now' is not a slug",
    ),
    "services-untranslated": (
        "check_services",
        _write(f"{INTEGRATION}/services.yaml", "speak:\n"),
        "service 'speak' has no translation",
    ),
    "services-orphan-translation": (
        "check_services",
        _translations(_orphan_service),
        "services.gone translates a service that",
    ),
    # manifest requirements
    "manifest-piper-tts": (
        "check_requirements",
        _requirements("piper-tts==1.8.0"),
        "'piper-tts==1.8.0' must not be listed",
    ),
    "manifest-piper-tts-spelling": (
        "check_requirements",
        _requirements("Piper_TTS>=1.2"),
        "piper-tts is installed at setup",
    ),
    "manifest-onnxruntime": (
        "check_requirements",
        _requirements("soco>=0.31", "onnxruntime==1.32.0"),
        "must not be listed: onnxruntime",
    ),
}


@pytest.mark.parametrize(("check", "breaker", "fragment"), FAILURES.values(), ids=FAILURES)
def test_rule_fails(repo: Path, check: str, breaker: Breaker, fragment: str) -> None:
    """Each rule reports the crafted bad input (and the clean copy did not have it)."""
    assert run(check, repo) == []
    breaker(repo)
    assert_reports(run(check, repo), fragment)


def test_unreadable_manifest_left_to_hassfest(repo: Path) -> None:
    """A manifest that does not parse is hassfest's to report, not this check's."""
    _write(f"{INTEGRATION}/manifest.json", "{")(repo)
    assert cc.check_requirements(repo) == []


def test_no_translations_at_all(repo: Path) -> None:
    """Without strings.json and en.json there is nothing to compare."""
    (repo / INTEGRATION / "strings.json").unlink()
    (repo / INTEGRATION / "translations/en.json").unlink()
    assert cc.check_translations(repo) == []


def test_en_json_checked_when_different(repo: Path) -> None:
    """When en.json differs, its own problems are reported against en.json."""
    edit_json(
        repo / INTEGRATION / "translations/en.json",
        lambda data: data["config"]["step"]["user"]["data"].update(extra="Extra"),
    )
    problems = cc.check_translations(repo)
    assert_reports(problems, "en.json: differs from strings.json", "en.json: config.step.user")


# --- services.yaml against translations --------------------------------------------------------

SERVICES_YAML = """\
announce:
  fields:
    message:
      required: true
      selector:
        text:
    volume:
      selector:
        number:
          min: 0
          max: 100
    advanced:
      collapsed: true
      fields:
        voice:
          selector:
            select:
              translation_key: voice
              options: [a, b]
reload:
"""


def _service_strings() -> dict[str, Any]:
    return {
        "announce": {
            "name": "Announce",
            "description": "Speak a message on speakers.",
            "fields": {
                "message": {"name": "Message", "description": "What to say."},
                "volume": {"name": "Volume", "description": "How loud."},
                "voice": {"name": "Voice", "description": "Which voice."},
            },
            "sections": {"advanced": {"name": "Advanced"}},
        },
        "reload": {"name": "Reload", "description": "Reload the voices."},
    }


@pytest.fixture
def services_repo(repo: Path) -> Path:
    """A clean copy with a services.yaml whose services are all translated."""
    (repo / INTEGRATION / "services.yaml").write_text(SERVICES_YAML, encoding="utf-8")

    def change(data: Any) -> None:
        data["services"] = _service_strings()
        data.setdefault("selector", {})["voice"] = {"options": {"a": "A", "b": "B"}}

    edit_translations(repo, change)
    return repo


def test_services_translated(services_repo: Path) -> None:
    """A services.yaml with sections, fully translated, passes every check."""
    assert cc.check_all(services_repo) == []


def _drop(*keys: str) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        node = data["services"]
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return change


def _add_field(data: Any) -> None:
    data["services"]["announce"]["fields"]["pitch"] = {"name": "Pitch", "description": "P."}


def _add_section(data: Any) -> None:
    data["services"]["announce"]["sections"]["extra"] = {"name": "Extra"}


def _drop_selector(data: Any) -> None:
    del data["selector"]["voice"]


SERVICE_FAILURES: dict[str, tuple[Callable[[Any], None], str]] = {
    "service-name": (_drop("announce", "name"), "has no name in services.announce.name"),
    "service-description": (_drop("reload", "description"), "has no description"),
    "service-missing": (_drop("reload"), "service 'reload' has no translation"),
    "field-name": (
        _drop("announce", "fields", "message", "name"),
        "field 'message' has no name in services.announce.fields.message.name",
    ),
    "field-description": (
        _drop("announce", "fields", "volume", "description"),
        "field 'volume' has no description",
    ),
    "section-field": (_drop("announce", "fields", "voice"), "field 'voice' has no name"),
    "section-name": (
        _drop("announce", "sections", "advanced"),
        "section 'advanced' has no name",
    ),
    "orphan-field": (
        _add_field,
        "services.announce.fields.pitch translates a field that services.yaml does not have",
    ),
    "orphan-section": (_add_section, "services.announce.sections.extra translates a section"),
    "orphan-service": (
        lambda data: data["services"].update(gone={"name": "Gone", "description": "G."}),
        "services.gone translates a service that services.yaml does not define",
    ),
    "selector-key": (_drop_selector, "selector translation key 'voice'"),
}


@pytest.mark.parametrize(("change", "fragment"), SERVICE_FAILURES.values(), ids=SERVICE_FAILURES)
def test_service_translation_fails(
    services_repo: Path, change: Callable[[Any], None], fragment: str
) -> None:
    """A missing or stray service translation is reported."""
    edit_translations(services_repo, change)
    assert_reports(cc.check_services(services_repo), fragment)


def test_services_duplicate_field(services_repo: Path) -> None:
    """A field used both directly and inside a section is reported."""
    path = services_repo / INTEGRATION / "services.yaml"
    path.write_text(SERVICES_YAML.replace("    volume:", "    voice:"), encoding="utf-8")
    assert_reports(cc.check_services(services_repo), "field 'voice' is used twice")


# --- brand icon ----------------------------------------------------------------------------

ICON = f"{INTEGRATION}/brand/icon.png"
ICON_FAILURES: dict[str, tuple[Breaker, str]] = {
    "missing": (_delete(ICON), "icon.png: missing"),
    "not-png": (_write(ICON, b"GIF89a" + bytes(40)), "is not a PNG"),
    "truncated": (_write(ICON, cc.PNG_SIGNATURE + b"\x00\x00"), "is truncated"),
    "no-ihdr": (_write(ICON, cc.PNG_SIGNATURE + bytes(30)), "does not start with a 13-byte IHDR"),
    "crc": (_write(ICON, png_bytes(256, 256, crc_offset=1)), "CRC mismatch"),
    "zero": (_write(ICON, png_bytes(0, 0)), "zero width or height"),
    "not-square": (_write(ICON, png_bytes(256, 200)), "must be square, is 256x200"),
    "too-small": (_write(ICON, png_bytes(128, 128)), "at least 256x256, is 128x128"),
    "2x-too-small": (
        _write(f"{INTEGRATION}/brand/icon@2x.png", png_bytes(256, 256)),
        "icon@2x.png: must be at least 512x512",
    ),
}


@pytest.mark.parametrize(("breaker", "fragment"), ICON_FAILURES.values(), ids=ICON_FAILURES)
def test_brand_icon_fails(repo: Path, breaker: Breaker, fragment: str) -> None:
    """A missing, broken, non-square or small icon is reported."""
    breaker(repo)
    assert_reports(cc.check_brand_icon(repo), fragment)


def test_brand_icon_size_parsed() -> None:
    """The IHDR parser reads width and height."""
    assert cc.png_size(png_bytes(300, 512)) == (300, 512)
    assert cc.png_size((REPO / ICON).read_bytes()) == (256, 256)


def test_brand_icon_larger_accepted(repo: Path) -> None:
    """A bigger square icon passes."""
    _write(ICON, png_bytes(512, 512))(repo)
    assert cc.check_brand_icon(repo) == []


# --- layout ------------------------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_layout_two_integrations(repo: Path, check: str) -> None:
    """One integration per repository: a second folder is reported by every check."""
    (repo / "custom_components" / "other").mkdir()
    assert run(check, repo) == [
        "custom_components/: must hold exactly one integration folder (found: alicia_tts, other)"
    ]


def test_layout_no_custom_components(repo: Path) -> None:
    """A repository without custom_components/ is reported once by check_all."""
    shutil.rmtree(repo / "custom_components")
    assert cc.check_all(repo) == ["custom_components/: missing"]


# --- command line ------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_cli_clean(repo: Path) -> None:
    """Exit 0 and a summary line when everything passes."""
    result = _cli(str(repo))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"all {len(CHECK_NAMES)} checks passed" in result.stdout


def test_cli_problems(repo: Path) -> None:
    """Exit 1 with one line per problem."""
    _delete(f"{INTEGRATION}/translations/en.json")(repo)
    _delete(f"{INTEGRATION}/brand/icon.png")(repo)
    result = _cli(str(repo))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{INTEGRATION}/translations/en.json: missing "
        "(strings.json and translations/en.json go together)",
        f"{INTEGRATION}/brand/icon.png: missing (HA 2026.3+ shows it for the integration)",
    ]
    assert "2 conformance problem(s)" in result.stderr


def test_cli_default_root_is_repository() -> None:
    """Without an argument the script checks its own repository."""
    result = _cli()
    assert result.stdout.splitlines() == [f"conformance: all {len(CHECK_NAMES)} checks passed"]
    assert result.returncode == 0


@pytest.mark.parametrize("args", [("/no/such/folder",), ("a", "b"), ("--help",)])
def test_cli_usage_errors(args: tuple[str, ...]) -> None:
    """Exit 2 on a bad argument."""
    assert _cli(*args).returncode == 2


def test_main_in_process(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """main() returns the exit code and prints the problems."""
    assert cc.main([str(repo)]) == 0
    _delete(f"{INTEGRATION}/brand/icon.png")(repo)
    assert cc.main([str(repo)]) == 1
    assert "icon.png: missing" in capsys.readouterr().out
