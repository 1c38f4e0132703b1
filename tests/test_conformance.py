"""Tests for script/check_conformance.py: the real repository, and broken copies of it.

Every rule is shown to fail: each case below breaks one thing in a clean copy of the repository
and asserts the exact check reports it. The clean copy itself must pass every check.
"""

from __future__ import annotations

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

from awesomeversion import AwesomeVersion, AwesomeVersionException, AwesomeVersionStrategy
from packaging.requirements import InvalidRequirement, Requirement
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; types-PyYAML is absent

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

# Problems the checker finds in the repository as it stands. When one is fixed, this test fails:
# delete the fixed line here (the list must end up empty).
KNOWN_REPO_PROBLEMS: dict[str, list[str]] = {}
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


def edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    """Change a YAML file in place."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def repair_known_problems(repo: Path) -> None:
    """Fix, in the copy only, what KNOWN_REPO_PROBLEMS lists (no-ops once the repo is fixed)."""
    for name in ("strings.json", "translations/en.json"):
        path = repo / INTEGRATION / name
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("<config>", "config"), encoding="utf-8")

    has_services = (repo / INTEGRATION / "services.yaml").is_file()

    def fix_rules(data: Any) -> None:
        for rule in ("docs-conditions", "docs-triggers"):
            data["rules"].setdefault(rule, {"status": "exempt", "comment": "None provided."})
        for rule in cc.ACTION_RULES:
            value = data["rules"][rule]
            if has_services and isinstance(value, dict) and value.get("status") == "exempt":
                data["rules"][rule] = "todo"

    edit_yaml(repo / INTEGRATION / "quality_scale.yaml", fix_rules)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the repository's checked files that passes every check."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("hacs.json", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, copy / name)
    shutil.copytree(
        REPO / "custom_components",
        copy / "custom_components",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    repair_known_problems(copy)
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
    """The repository passes each check, apart from the known problems listed above."""
    assert run(check, REPO) == KNOWN_REPO_PROBLEMS.get(check, [])


def test_real_repository_all() -> None:
    """check_all reports exactly the known problems."""
    expected = [problem for check in CHECK_NAMES for problem in KNOWN_REPO_PROBLEMS.get(check, [])]
    assert cc.check_all(REPO) == expected


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


def _hacs(**changes: Any) -> Breaker:
    def breaker(repo: Path) -> None:
        def change(data: dict[str, Any]) -> None:
            for key, value in changes.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value

        edit_json(repo / "hacs.json", change)

    return breaker


def _manifest(**changes: Any) -> Breaker:
    def breaker(repo: Path) -> None:
        def change(data: dict[str, Any]) -> None:
            for key, value in changes.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value

        edit_json(repo / INTEGRATION / "manifest.json", change)

    return breaker


def _manifest_unsorted(repo: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["name"] = data.pop("name")

    edit_json(repo / INTEGRATION / "manifest.json", change)


def _translations(change: Callable[[Any], None]) -> Breaker:
    def breaker(repo: Path) -> None:
        edit_translations(repo, change)

    return breaker


def _set_text(value: str) -> Breaker:
    def change(data: Any) -> None:
        data["config"]["step"]["user"]["description"] = value

    return _translations(change)


def _en_only(repo: Path) -> None:
    def change(data: Any) -> None:
        data["config"]["abort"]["already_configured"] = "Different text."

    edit_json(repo / INTEGRATION / "translations/en.json", change)


def _quality(rule: str, value: Any) -> Breaker:
    def breaker(repo: Path) -> None:
        def change(data: Any) -> None:
            if value is None:
                del data["rules"][rule]
            else:
                data["rules"][rule] = value

        edit_yaml(repo / INTEGRATION / "quality_scale.yaml", change)

    return breaker


def _remove_config_schema(repo: Path) -> None:
    path = repo / INTEGRATION / "__init__.py"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("CONFIG_SCHEMA")]
    assert len(kept) == len(lines) - 1, "the fixture expects one CONFIG_SCHEMA line"
    path.write_text("".join(kept), encoding="utf-8")


def _register_service(repo: Path) -> None:
    (repo / INTEGRATION / "services.yaml").unlink(missing_ok=True)
    path = repo / INTEGRATION / "__init__.py"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + '\n\ndef _x(hass):\n    hass.services.async_register("a", "b", _x)\n')


def _flow_field_without_description(data: Any) -> None:
    data["config"]["step"]["user"]["data"]["extra"] = "Extra"


def _description_without_field(data: Any) -> None:
    data["config"]["step"]["user"]["data_description"]["ghost"] = "Ghost"


def _reference(data: Any) -> None:
    data["config"]["abort"]["already_configured"] = "[%key:common::config_flow::abort::x%]"


def _non_string(data: Any) -> None:
    data["config"]["error"]["unknown_voice"] = 3


def _unknown_section(data: Any) -> None:
    data["bogus"] = {"a": "b"}


def _issue_without_description(data: Any) -> None:
    del data["issues"]["piper_unavailable"]["description"]


def _orphan_service(data: Any) -> None:
    data["services"] = {"gone": {"name": "Gone", "description": "Nothing."}}


def _exempt_actions(repo: Path) -> None:
    _write(f"{INTEGRATION}/services.yaml", "speak:\n")(repo)
    _quality("docs-actions", {"status": "exempt", "comment": "No actions."})(repo)


def _claim_gold(repo: Path) -> None:
    _manifest(quality_scale="gold")(repo)
    _quality("diagnostics", "todo")(repo)


def _exception_without_message(data: Any) -> None:
    data["exceptions"]["engine_error"] = {"text": "Oops."}


# (check, how to break the copy, a fragment the check must report)
FAILURES: dict[str, tuple[str, Breaker, str]] = {
    # hacs.json
    "hacs-missing": ("check_hacs_json", _delete("hacs.json"), "hacs.json: missing"),
    "hacs-not-json": ("check_hacs_json", _write("hacs.json", "{name:"), "not valid JSON"),
    "hacs-not-object": ("check_hacs_json", _write("hacs.json", "[]"), "must be a JSON object"),
    "hacs-no-name": ("check_hacs_json", _hacs(name=None), "required key 'name'"),
    "hacs-empty-name": ("check_hacs_json", _hacs(name=" "), "'name' must not be empty"),
    "hacs-unknown-key": ("check_hacs_json", _hacs(domains=["tts"]), "unknown key 'domains'"),
    "hacs-ha-version": ("check_hacs_json", _hacs(homeassistant="2026.x"), "'2026.x' is not"),
    "hacs-ha-month": ("check_hacs_json", _hacs(homeassistant="2026.13.0"), "'2026.13.0' is not"),
    "hacs-ha-type": ("check_hacs_json", _hacs(homeassistant=2026.1), "must be a string"),
    "hacs-hacs-version": ("check_hacs_json", _hacs(hacs="new"), "'hacs' 'new' is not"),
    "hacs-bool-type": ("check_hacs_json", _hacs(render_readme="yes"), "must be true or false"),
    "hacs-zip-no-file": (
        "check_hacs_json",
        _hacs(zip_release=True, filename=None),
        "needs 'filename'",
    ),
    "hacs-country": ("check_hacs_json", _hacs(country=["USA"]), "'USA' is not a two-letter"),
    "hacs-country-type": ("check_hacs_json", _hacs(country=1), "a string or a list"),
    # manifest.json
    "manifest-missing": (
        "check_manifest",
        _delete(f"{INTEGRATION}/manifest.json"),
        "manifest.json: missing",
    ),
    "manifest-not-json": (
        "check_manifest",
        _write(f"{INTEGRATION}/manifest.json", "{"),
        "not valid JSON",
    ),
    "manifest-not-object": (
        "check_manifest",
        _write(f"{INTEGRATION}/manifest.json", '"x"'),
        "must be a JSON object",
    ),
    "manifest-domain": (
        "check_manifest",
        _manifest(domain="alicia"),
        "does not match the folder name 'alicia_tts'",
    ),
    "manifest-domain-format": ("check_manifest", _manifest(domain="Alicia-TTS"), "lowercase"),
    "manifest-order": ("check_manifest", _manifest_unsorted, "keys are not sorted"),
    "manifest-unknown-key": (
        "check_manifest",
        _manifest(homeassistant="2026.10.0"),
        "unknown key 'homeassistant'",
    ),
    "manifest-no-name": ("check_manifest", _manifest(name=None), "required key 'name'"),
    "manifest-no-version": ("check_manifest", _manifest(version=None), "required key 'version'"),
    "manifest-no-codeowners": (
        "check_manifest",
        _manifest(codeowners=None),
        "required key 'codeowners'",
    ),
    "manifest-no-documentation": (
        "check_manifest",
        _manifest(documentation=None),
        "required key 'documentation'",
    ),
    "manifest-no-issue-tracker": (
        "check_manifest",
        _manifest(issue_tracker=None),
        "required key 'issue_tracker'",
    ),
    "manifest-no-iot-class": ("check_manifest", _manifest(iot_class=None), "key 'iot_class'"),
    "manifest-empty-name": ("check_manifest", _manifest(name=""), "'name' must be a non-empty"),
    "manifest-version": ("check_manifest", _manifest(version="one.two"), "not a valid version"),
    "manifest-version-type": ("check_manifest", _manifest(version=1), "not a valid version"),
    "manifest-codeowners-type": ("check_manifest", _manifest(codeowners="@a"), "must be a list"),
    "manifest-codeowners-empty": ("check_manifest", _manifest(codeowners=[]), "is empty"),
    "manifest-codeowner-handle": (
        "check_manifest",
        _manifest(codeowners=["alicia"]),
        "'alicia' is not a GitHub handle",
    ),
    "manifest-documentation-http": (
        "check_manifest",
        _manifest(documentation="http://example.com/docs"),
        "is not an https URL",
    ),
    "manifest-documentation-core": (
        "check_manifest",
        _manifest(documentation="https://www.home-assistant.io/integrations/alicia_tts"),
        "own docs",
    ),
    "manifest-issue-tracker": (
        "check_manifest",
        _manifest(issue_tracker="issues"),
        "'issue_tracker' 'issues' is not",
    ),
    "manifest-iot-class": ("check_manifest", _manifest(iot_class="local"), "'iot_class' 'local'"),
    "manifest-integration-type": (
        "check_manifest",
        _manifest(integration_type="virtual"),
        "'integration_type' 'virtual'",
    ),
    "manifest-quality-scale": (
        "check_manifest",
        _manifest(quality_scale="diamond"),
        "'quality_scale' 'diamond'",
    ),
    "manifest-config-flow-type": (
        "check_manifest",
        _manifest(config_flow="yes"),
        "'config_flow' must be true or false",
    ),
    "manifest-config-flow-file": (
        "check_manifest",
        _delete(f"{INTEGRATION}/config_flow.py"),
        "config_flow.py does not exist",
    ),
    "manifest-loggers": ("check_manifest", _manifest(loggers="piper"), "'loggers' must be a list"),
    "manifest-dependencies-type": (
        "check_manifest",
        _manifest(dependencies="tts"),
        "'dependencies' must be a list",
    ),
    "manifest-dependency-format": (
        "check_manifest",
        _manifest(dependencies=["Media Source"]),
        "'Media Source' is not a domain",
    ),
    "manifest-dependency-unknown": (
        "check_manifest",
        _manifest(after_dependencies=["no_such_integration_xyz"]),
        "'no_such_integration_xyz' is not a known integration",
    ),
    "manifest-dependency-self": (
        "check_manifest",
        _manifest(dependencies=["tts", "alicia_tts"]),
        "own domain",
    ),
    "manifest-dependency-twice": (
        "check_manifest",
        _manifest(dependencies=["tts", "tts"]),
        "lists 'tts' twice",
    ),
    "manifest-requirements-type": (
        "check_manifest",
        _manifest(requirements="soco"),
        "'requirements' must be a list",
    ),
    "manifest-requirement-space": (
        "check_manifest",
        _manifest(requirements=["soco >= 0.31"]),
        "contains a space",
    ),
    "manifest-requirement-invalid": (
        "check_manifest",
        _manifest(requirements=["git+https://github.com/a/b.git"]),
        "is not a valid requirement",
    ),
    "manifest-requirement-version": (
        "check_manifest",
        _manifest(requirements=["soco>=0.31.x"]),
        "invalid version '0.31.x'",
    ),
    "manifest-requirement-not-string": (
        "check_manifest",
        _manifest(requirements=[1]),
        "is not a string",
    ),
    "manifest-requirement-twice": (
        "check_manifest",
        _manifest(requirements=["soco>=0.31", "SoCo<1"]),
        "soco is listed twice",
    ),
    "manifest-piper-tts": (
        "check_manifest",
        _manifest(requirements=["piper-tts==1.8.0"]),
        "'piper-tts==1.8.0' must not be listed",
    ),
    "manifest-piper-tts-spelling": (
        "check_manifest",
        _manifest(requirements=["Piper_TTS>=1.2"]),
        "piper-tts is installed at setup",
    ),
    "manifest-onnxruntime": (
        "check_manifest",
        _manifest(requirements=["onnxruntime==1.32.0"]),
        "must not be listed: onnxruntime",
    ),
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
    "strings-reference": (
        "check_translations",
        _translations(_reference),
        "config.abort.already_configured uses a [%key:...%] reference",
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
    "strings-unclosed-placeholder": (
        "check_translations",
        _set_text("Put it into {folder"),
        "has a malformed placeholder",
    ),
    "strings-stray-brace": (
        "check_translations",
        _set_text("Put it } here"),
        "has a malformed placeholder",
    ),
    "strings-placeholder-identifier": (
        "check_translations",
        _set_text("Put it into {the folder}"),
        "{the folder}, which is not a valid identifier",
    ),
    "strings-quoted-placeholder": (
        "check_translations",
        _set_text("Put it into '{folder}'"),
        "placeholder inside single quotes",
    ),
    "strings-html": ("check_translations", _set_text("A <b>bold</b> voice"), "'<b>'"),
    "strings-url": (
        "check_translations",
        _set_text("See https://example.com/voices"),
        "contains the URL 'https://example.com/voices'",
    ),
    "strings-whitespace": (
        "check_translations",
        _set_text("Pick a voice "),
        "leading or trailing whitespace",
    ),
    "strings-non-string": (
        "check_translations",
        _translations(_non_string),
        "config.error.unknown_voice must be a string, not a number",
    ),
    "strings-unknown-section": (
        "check_translations",
        _translations(_unknown_section),
        "unknown top-level section 'bogus'",
    ),
    "strings-issue": (
        "check_translations",
        _translations(_issue_without_description),
        "issues.piper_unavailable needs either a description or a fix_flow",
    ),
    "strings-exception": (
        "check_translations",
        _translations(_exception_without_message),
        "exceptions.engine_error needs a message",
    ),
    "json-file": ("check_json_files", _write(f"{INTEGRATION}/icons.json", "{"), "icons.json"),
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
}


@pytest.mark.parametrize(("check", "breaker", "fragment"), FAILURES.values(), ids=FAILURES)
def test_rule_fails(repo: Path, check: str, breaker: Breaker, fragment: str) -> None:
    """Each rule reports the crafted bad input (and the clean copy did not have it)."""
    assert run(check, repo) == []
    breaker(repo)
    assert_reports(run(check, repo), fragment)


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


# --- quality_scale.yaml ------------------------------------------------------------------------

QUALITY_FAILURES: dict[str, tuple[Breaker, str]] = {
    "not-yaml": (_write(f"{INTEGRATION}/quality_scale.yaml", "rules: [\n"), "not valid YAML"),
    "no-rules": (_write(f"{INTEGRATION}/quality_scale.yaml", "brands: done\n"), "'rules' mapping"),
    "value": (_quality("brands", "maybe"), "rule 'brands': 'maybe' is not done or todo"),
    "plain-exempt": (_quality("brands", "exempt"), "exempt must be written as"),
    "exempt-no-comment": (_quality("brands", {"status": "exempt"}), "exempt needs a comment"),
    "empty-comment": (
        _quality("brands", {"status": "exempt", "comment": " "}),
        "comment must be non-empty",
    ),
    "status": (_quality("brands", {"status": "partly"}), "status 'partly' is not"),
    "extra-key": (_quality("brands", {"status": "done", "note": "x"}), "unknown key 'note'"),
    "list-value": (_quality("brands", ["done"]), "must be done, todo or"),
    "missing-bronze": (_quality("brands", None), "rule 'brands' (bronze) is missing"),
    "missing-platinum": (
        _quality("strict-typing", None),
        "rule 'strict-typing' (platinum) is missing",
    ),
    "unknown-rule": (_quality("no-such-rule", "done"), "unknown rule 'no-such-rule'"),
    "exempt-actions": (
        _exempt_actions,
        "rule 'docs-actions' is exempt, but services.yaml defines service actions",
    ),
    "manifest-tier": (
        _claim_gold,
        "manifest claims gold but rule 'diagnostics' (gold) is todo",
    ),
}


@pytest.mark.parametrize(("breaker", "fragment"), QUALITY_FAILURES.values(), ids=QUALITY_FAILURES)
def test_quality_scale_fails(repo: Path, breaker: Breaker, fragment: str) -> None:
    """Each quality-scale rule reports the crafted bad input."""
    breaker(repo)
    assert_reports(cc.check_quality_scale(repo), fragment)


def test_quality_scale_top_level_key(repo: Path) -> None:
    """Only 'rules' may sit at the top of quality_scale.yaml."""
    edit_yaml(repo / INTEGRATION / "quality_scale.yaml", lambda data: data.update(extra=1))
    assert_reports(cc.check_quality_scale(repo), "unknown top-level key 'extra'")


def test_quality_scale_tiers_are_complete() -> None:
    """The tier lists hold 54 distinct rules (20 Bronze, 10 Silver, 21 Gold, 3 Platinum)."""
    sizes = {tier: len(rules) for tier, rules in cc.QUALITY_SCALE_TIERS.items()}
    assert sizes == {"bronze": 20, "silver": 10, "gold": 21, "platinum": 3}
    assert len(cc.RULE_TIER) == 54


def test_quality_scale_optional(repo: Path) -> None:
    """Without quality_scale.yaml there is nothing to check."""
    (repo / INTEGRATION / "quality_scale.yaml").unlink()
    assert cc.check_quality_scale(repo) == []


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


# --- __init__.py config schema -----------------------------------------------------------------

INIT = f"{INTEGRATION}/__init__.py"


def test_config_schema_missing(repo: Path) -> None:
    """async_setup without CONFIG_SCHEMA is reported."""
    _remove_config_schema(repo)
    assert_reports(cc.check_config_schema(repo), "defines async_setup but no CONFIG_SCHEMA")


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("async def async_setup(hass, config):\n    return True\n", True),
        ("def setup(hass, config):\n    return True\n", True),
        ("def async_setup(hass, config):\n    return True\n", False),  # hassfest matches kinds
        ("async def async_setup_entry(hass, entry):\n    return True\n", False),
        ("CONFIG_SCHEMA = 1\nasync def async_setup(hass, config):\n    return True\n", False),
        ("CONFIG_SCHEMA: object = 1\nasync def async_setup(h, c):\n    return True\n", False),
        ("PLATFORM_SCHEMA, X = 1, 2\nasync def async_setup(h, c):\n    return True\n", False),
        (
            "from homeassistant.helpers.config_validation import (\n"
            "    config_entry_only_config_schema as CONFIG_SCHEMA,\n)\n"
            "async def async_setup(h, c):\n    return True\n",
            False,
        ),
        ("import CONFIG_SCHEMA\nasync def async_setup(h, c):\n    return True\n", False),
        (
            "def f():\n    CONFIG_SCHEMA = 1\nasync def async_setup(h, c):\n    return True\n",
            True,  # only module-level names count
        ),
    ],
)
def test_config_schema_rule(repo: Path, source: str, problem: bool) -> None:
    """The AST check follows hassfest's config_schema rule."""
    (repo / INIT).write_text(source, encoding="utf-8")
    assert bool(cc.check_config_schema(repo)) is problem


def test_config_schema_syntax_error(repo: Path) -> None:
    """An __init__.py that does not parse is reported."""
    (repo / INIT).write_text("def (:\n", encoding="utf-8")
    assert_reports(cc.check_config_schema(repo), "does not parse (line 1")


def test_config_schema_init_missing(repo: Path) -> None:
    """An integration without __init__.py is reported."""
    (repo / INIT).unlink()
    assert_reports(cc.check_config_schema(repo), "__init__.py: missing")


# --- repository files and layout -----------------------------------------------------------

REPO_FILE_FAILURES: dict[str, tuple[Breaker, str]] = {
    "readme-missing": (_delete("README.md"), "README.md: missing"),
    "readme-empty": (_write("README.md", "\n"), "README.md: is empty"),
    "license-missing": (_delete("LICENSE"), "LICENSE: missing"),
    "license-mit": (
        _write("LICENSE", "MIT License\n\nCopyright (c) 2026\n"),
        "is not the GNU General Public License version 3",
    ),
    "license-gpl2": (
        _write("LICENSE", "GNU GENERAL PUBLIC LICENSE\nVersion 2, June 1991\n"),
        "is not the GNU General Public License version 3",
    ),
    "license-lgpl3": (
        _write("LICENSE", "GNU LESSER GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007\n"),
        "is not the GNU General Public License version 3",
    ),
}


@pytest.mark.parametrize(
    ("breaker", "fragment"), REPO_FILE_FAILURES.values(), ids=REPO_FILE_FAILURES
)
def test_repo_files_fail(repo: Path, breaker: Breaker, fragment: str) -> None:
    """README.md and a GPL-3.0 LICENSE are required."""
    breaker(repo)
    assert_reports(cc.check_repo_files(repo), fragment)


@pytest.mark.parametrize(
    "check", [name for name in CHECK_NAMES if name not in {"check_hacs_json", "check_repo_files"}]
)
def test_layout_two_integrations(repo: Path, check: str) -> None:
    """HACS takes one integration per repository: a second folder is reported by every check."""
    (repo / "custom_components" / "other").mkdir()
    assert run(check, repo) == [
        "custom_components/: must hold exactly one integration folder (found: alicia_tts, other)"
    ]


def test_layout_no_custom_components(repo: Path) -> None:
    """A repository without custom_components/ is reported once by check_all."""
    shutil.rmtree(repo / "custom_components")
    missing = "custom_components/: missing (HACS expects custom_components/<domain>/)"
    assert cc.check_all(repo).count(missing) == 1


def test_domain_collides_with_core(repo: Path) -> None:
    """A domain that a core integration already uses is reported."""
    folder = repo / INTEGRATION
    folder.rename(folder.with_name("tts"))
    edit_json(repo / "custom_components/tts/manifest.json", lambda data: data.update(domain="tts"))
    assert_reports(cc.check_manifest(repo), "collides with the built-in core integration 'tts'")


def test_config_flow_without_translations(repo: Path) -> None:
    """A config flow needs strings.json and en.json."""
    (repo / INTEGRATION / "strings.json").unlink()
    (repo / INTEGRATION / "translations/en.json").unlink()
    assert_reports(cc.check_translations(repo), "has a config flow but no strings.json")
    edit_json(repo / INTEGRATION / "manifest.json", lambda data: data.update(config_flow=False))
    assert cc.check_translations(repo) == []


def test_en_json_checked_when_different(repo: Path) -> None:
    """When en.json differs, its own problems are reported against en.json."""
    edit_json(
        repo / INTEGRATION / "translations/en.json",
        lambda data: data["config"]["abort"].update(already_configured="See <b>this</b>"),
    )
    problems = cc.check_translations(repo)
    assert_reports(problems, "en.json: differs from strings.json", "en.json: config.abort")


# --- the checker's value rules agree with the real libraries -------------------------------

VERSIONS = [
    "0.1.0",
    "1",
    "1.2",
    "2026.10.0",
    "2026.10.0b1",
    "1.0.0-beta.1",
    "1.0.0+build.5",
    "v1.2.3",
    "1.0a1",
    "1.0rc1",
    "1.0.post1",
    "1.0.dev3",
    "1!2.0",
    "1.0-1",
    "1.2.3.4.5",
    "one.two",
    "",
    "1.2.x",
    "latest",
    "0x1F",
    "1..2",
    "1.2.3-",
    "dev",
    "v",
]


@pytest.mark.parametrize("version", VERSIONS)
def test_version_matches_awesomeversion(version: str) -> None:
    """is_version accepts what hassfest's AwesomeVersion strategies accept, and no more."""
    strategies = [
        AwesomeVersionStrategy.CALVER,
        AwesomeVersionStrategy.SEMVER,
        AwesomeVersionStrategy.SIMPLEVER,
        AwesomeVersionStrategy.BUILDVER,
        AwesomeVersionStrategy.PEP440,
    ]
    try:
        AwesomeVersion(version, ensure_strategy=strategies)
    except AwesomeVersionException:
        expected = False
    else:
        expected = True
    assert cc.is_version(version) is expected


REQUIREMENTS = [
    "soco>=0.31.2,<0.33",
    "sonos-websocket>=0.2.0,<0.3",
    "piper-tts==1.8.0",
    "foo",
    "foo[bar]==1.0",
    "foo[bar,baz]>=1",
    "foo==1.*",
    "foo!=1.5.*",
    "foo~=1.4",
    "foo.bar==1",
    "foo;python_version<'3.14'",
    "foo>=1;sys_platform=='linux'",
    "foo>=",
    "foo>=1<2",
    "foo>1.0junk",
    "req!!",
    "-foo",
    "foo-",
    "git+https://github.com/a/b.git",
]


@pytest.mark.parametrize("requirement", REQUIREMENTS)
def test_requirement_matches_packaging(requirement: str) -> None:
    """requirement_problem accepts exactly what pip's parser accepts (spaces aside)."""
    try:
        Requirement(requirement)
    except InvalidRequirement:
        valid = False
    else:
        valid = True
    assert (cc.requirement_problem(requirement) is None) is valid


@pytest.mark.parametrize(
    "text",
    [
        "A voice from `<config>/alicia_tts/voices/`",
        "A <b>bold</b> claim",
        "Compare a < b and b > c",
        "Plain text with `code` and {placeholder}",
        "An arrow -> here",
    ],
)
def test_html_rule_matches_home_assistant(text: str) -> None:
    """The HTML rule agrees with Home Assistant's cv.string_with_no_html."""
    from homeassistant.helpers import config_validation as cv
    import probatio

    try:
        cv.string_with_no_html(text)
    except probatio.Invalid:
        rejected = True
    else:
        rejected = False
    flagged = any("HTML" in problem for problem in cc.translation_text_problems(text))
    assert flagged is rejected


@pytest.mark.parametrize(
    ("text", "has_url"),
    [
        ("See https://example.com/voices", True),
        ("Visit www.example.org", True),
        ("Use mqtt://broker.local.lan:1883", True),
        ("For example `http://192.168.1.10:8123`", False),  # hassfest's pattern needs a TLD
        ("Enter an http:// or https:// address", False),
        ("A .onnx.json file", False),
    ],
)
def test_url_rule(text: str, has_url: bool) -> None:
    """The URL rule follows hassfest's RE_URL, IP addresses and bare schemes included."""
    flagged = any("contains the URL" in p for p in cc.translation_text_problems(text))
    assert flagged is has_url


@pytest.mark.parametrize(
    ("value", "valid"),
    [("2026.10.0", True), ("2026.1", True), ("2026.10.0b2", True), ("2026.0.1", False)],
)
def test_ha_version(value: str, valid: bool) -> None:
    """hacs.json 'homeassistant' must name a Home Assistant release."""
    assert cc.is_ha_version(value) is valid


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
    assert "all 9 checks passed" in result.stdout


def test_cli_problems(repo: Path) -> None:
    """Exit 1 with one line per problem."""
    _hacs(name=None, extra=True)(repo)
    result = _cli(str(repo))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "hacs.json: unknown key 'extra' (HACS accepts only content_in_root, country, filename, "
        "hacs, hide_default_branch, homeassistant, name, persistent_directory, render_readme, "
        "zip_release)",
        "hacs.json: required key 'name' is missing",
    ]
    assert "2 conformance problem(s)" in result.stderr


def test_cli_default_root_is_repository() -> None:
    """Without an argument the script checks its own repository."""
    result = _cli()
    expected = [problem for check in CHECK_NAMES for problem in KNOWN_REPO_PROBLEMS.get(check, [])]
    if expected:
        assert result.stdout.splitlines() == expected
        assert result.returncode == 1
    else:
        assert result.stdout.splitlines() == [f"conformance: all {len(CHECK_NAMES)} checks passed"]
        assert result.returncode == 0


@pytest.mark.parametrize("args", [("/no/such/folder",), ("a", "b"), ("--help",)])
def test_cli_usage_errors(args: tuple[str, ...]) -> None:
    """Exit 2 on a bad argument."""
    assert _cli(*args).returncode == 2


def test_main_in_process(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """main() returns the exit code and prints the problems."""
    assert cc.main([str(repo)]) == 0
    _delete("README.md")(repo)
    assert cc.main([str(repo)]) == 1
    assert "README.md: missing" in capsys.readouterr().out


def test_action_rules_exempt_without_services(repo: Path) -> None:
    """Without services.yaml the service-action rules may be exempt."""
    (repo / INTEGRATION / "services.yaml").unlink(missing_ok=True)
    for rule in cc.ACTION_RULES:
        _quality(rule, {"status": "exempt", "comment": "No service actions."})(repo)
    assert cc.check_quality_scale(repo) == []
