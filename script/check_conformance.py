"""Offline conformance checks: the HACS and hassfest rules this repository must meet.

Run: ``python script/check_conformance.py [repo_root]`` (default: the repository holding this
script). Prints one line per problem and exits 1 if there are any, 0 if all checks pass, 2 on a
usage error. Needs only the standard library and PyYAML.

The official validators (``hacs/action`` and ``home-assistant/actions/hassfest``) need GitHub and
a container; these checks restate their rules for a custom integration, plus project rules:

* ``hacs.json``: HACS ``HACS_MANIFEST_JSON_SCHEMA`` (required ``name``, no unknown keys, value
  types, ``zip_release`` needs ``filename``); ``homeassistant``/``hacs`` must be versions.
* ``manifest.json``: hassfest ``CUSTOM_INTEGRATION_MANIFEST_SCHEMA`` and ``validate_manifest``
  (domain = folder, key order, unknown keys, iot_class, integration_type, version, https
  documentation outside home-assistant.io/integrations, requirement format), HACS
  ``INTEGRATION_MANIFEST_JSON_SCHEMA`` (codeowners, documentation, issue_tracker, version), the
  hassfest ``config_flow`` rule (``config_flow: true`` needs ``config_flow.py``), and the project
  rule that ``piper-tts``/``onnxruntime`` stay out of ``requirements`` (no musllinux wheels).
  When Home Assistant is importable (the project venv), dependencies must name existing
  integrations and the domain must not collide with a core integration; otherwise those two
  checks are skipped.
* Translations: ``strings.json`` and ``translations/en.json`` are identical (project rule) and
  pass hassfest's value rules (no HTML, URLs, edge spaces, bad or single-quoted placeholders);
  no ``[%key:...%]`` references (custom integrations cannot resolve them); every flow field has a
  ``data_description`` and every ``data_description`` belongs to a field.
* ``services.yaml`` against the ``services`` translations, both ways (project rule: stricter than
  hassfest, which lets custom integrations put names in services.yaml).
* ``quality_scale.yaml``: hassfest's value schema, exempt needs a comment, every rule of the
  Bronze to Platinum tiers present, a tier claimed in the manifest is met, and the service-action
  rules are not exempt when ``services.yaml`` defines actions.
* ``brand/icon.png``: a PNG (IHDR parsed and CRC-checked), square, at least 256x256.
* ``__init__.py``: hassfest ``config_schema`` (``async_setup``/``setup`` needs ``CONFIG_SCHEMA``).
* ``README.md`` and a GPL-3.0 ``LICENSE`` at the root; every JSON file of the integration parses.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Mapping
import importlib.util
import json
from pathlib import Path
import re
import string
import struct
import sys
from typing import Any, Final
from urllib.parse import urlparse
import zlib

import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; types-PyYAML is absent

type Problems = list[str]

# --- shared value rules ---------------------------------------------------------------------


def _pep440(*, implicit_post: bool) -> re.Pattern[str]:
    """PEP 440, written out from the specification (public version plus optional local part).

    ``implicit_post`` allows the ``1.0-1`` spelling of a post release, which pip accepts but
    AwesomeVersion does not.
    """
    post = (
        r"-\d+|[-_.]?(?:post|rev|r)[-_.]?\d*" if implicit_post else r"[-_.]?(?:post|rev|r)[-_.]?\d*"
    )
    return re.compile(
        r"^v?(?:\d+!)?\d+(?:\.\d+)*"
        r"(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?\d*)?"
        rf"(?:{post})?"
        r"(?:[-_.]?dev[-_.]?\d*)?"
        r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$",
        re.IGNORECASE,
    )


RE_PEP440: Final = _pep440(implicit_post=True)
RE_PEP440_AWESOME: Final = _pep440(implicit_post=False)
# Semantic Versioning 2.0: MAJOR.MINOR.PATCH[-prerelease][+build].
_SEMVER_ID: Final = r"[0-9A-Za-z-]+"
RE_SEMVER: Final = re.compile(
    rf"^v?\d+\.\d+\.\d+(?:-{_SEMVER_ID}(?:\.{_SEMVER_ID})*)?(?:\+{_SEMVER_ID}(?:\.{_SEMVER_ID})*)?$"
)
# A Home Assistant release: YEAR.MONTH[.PATCH][bN|.devN].
RE_HA_VERSION: Final = re.compile(r"^(\d{4})\.(\d{1,2})(?:\.\d+)?(?:b\d+|\.dev\d+)?$")

RE_DOMAIN: Final = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
# A GitHub user (@name) or team (@org/team).
RE_CODEOWNER: Final = re.compile(r"^@[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[A-Za-z0-9._-]+)?$")

# A PEP 508 requirement as Home Assistant installs it: name, extras, version specifiers and an
# optional marker, with no spaces anywhere (hassfest rejects spaces).
_REQ_NAME: Final = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_REQ_OPERATOR: Final = r"===|==|!=|~=|<=|>=|<|>"
_REQ_VERSION: Final = r"[^,;<>=!~]+"
RE_REQUIREMENT: Final = re.compile(
    rf"^(?P<name>{_REQ_NAME})"
    rf"(?:\[{_REQ_NAME}(?:,{_REQ_NAME})*\])?"
    rf"(?P<specs>(?:{_REQ_OPERATOR}){_REQ_VERSION}(?:,(?:{_REQ_OPERATOR}){_REQ_VERSION})*)?"
    r"(?:;(?P<marker>.+))?$"
)
RE_SPECIFIER: Final = re.compile(rf"^(?P<op>{_REQ_OPERATOR})(?P<version>{_REQ_VERSION})$")

# Translation value rules (hassfest translations.py and cv.string_with_no_html).
RE_REFERENCE: Final = re.compile(r"\[%key:[^%]*%\]")
RE_HTML: Final = re.compile(r"<[a-z].*?>", re.IGNORECASE)
RE_URL: Final = re.compile(
    r"(?:(?:ftp|ftps|scp|http|https|mqtt|mqtts|socket|socks5)://|www\.)"
    r"[a-z0-9]+(?:[-.][a-z0-9]+)*\.[a-z]{2,5}(?::\d{1,5})?(?:/.*)?",
    re.IGNORECASE,
)
RE_QUOTED_PLACEHOLDER: Final = re.compile(r"'\{\w+\}'")

# Code that registers service actions (hassfest services.py).
RE_SERVICE_REGISTRATION: Final = re.compile(
    r"hass\.services\.(?:async_)?register|async_register_entity_service"
    r"|async_register_admin_service"
)


def is_version(value: str) -> bool:
    """Whether AwesomeVersion accepts the value as CalVer, SemVer, SimpleVer, BuildVer or PEP 440.

    CalVer, SimpleVer and BuildVer versions are all PEP 440 versions.
    """
    value = value.strip()
    return bool(RE_PEP440_AWESOME.match(value) or RE_SEMVER.match(value))


def is_ha_version(value: str) -> bool:
    """Whether the value names a Home Assistant release such as ``2026.10.0``."""
    match = RE_HA_VERSION.match(value)
    return match is not None and 1 <= int(match.group(2)) <= 12


def normalize_package(name: str) -> str:
    """A package name normalized as PyPI compares names (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_problem(requirement: str) -> str | None:
    """Why a manifest requirement string is not a valid requirement, or None when it is."""
    if " " in requirement:
        return "contains a space (hassfest rejects spaces in requirements)"
    match = RE_REQUIREMENT.match(requirement)
    if match is None:
        return "is not a valid requirement (name[extras]<op><version>,... ;marker)"
    specs = match.group("specs")
    for spec in specs.split(",") if specs else []:
        spec_match = RE_SPECIFIER.match(spec)
        if spec_match is None:
            return f"has an invalid version specifier {spec!r}"
        op, version = spec_match.group("op"), spec_match.group("version")
        if op == "===":
            continue
        if op in {"==", "!="} and version.endswith(".*"):
            version = version.removesuffix(".*")
        if not RE_PEP440.match(version):
            return f"has an invalid version {version!r} in {spec!r}"
    return None


def is_https_url(value: str) -> bool:
    """Whether the value is an absolute https URL with a host."""
    parsed = urlparse(value)
    return parsed.scheme == "https" and bool(parsed.netloc) and " " not in value


def is_http_url(value: str) -> bool:
    """Whether the value is an absolute http(s) URL with a host (HACS/cv.url)."""
    parsed = urlparse(value)
    return parsed.scheme in {"http", "https"} and bool(parsed.netloc) and " " not in value


def translation_text_problems(text: str) -> list[str]:
    """What hassfest (and the custom-integration rules) reject in one translation string."""
    problems: list[str] = []
    if RE_REFERENCE.search(text):
        problems.append(
            "uses a [%key:...%] reference; custom integrations cannot resolve references, "
            "write the text out"
        )
    if match := RE_HTML.search(text):
        problems.append(f"contains HTML-like markup {match.group(0)!r} (hassfest rejects HTML)")
    if match := RE_URL.search(text):
        problems.append(
            f"contains the URL {match.group(0)!r}; pass URLs as description placeholders"
        )
    if text != text.strip():
        problems.append("has leading or trailing whitespace")
    if match := RE_QUOTED_PLACEHOLDER.search(text):
        problems.append(f"has a placeholder inside single quotes {match.group(0)}")
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(text) if field]
    except ValueError as err:
        problems.append(f"has a malformed placeholder ({err}); write literal braces as {{{{ }}}}")
    else:
        problems.extend(
            f"has the placeholder {{{field}}}, which is not a valid identifier"
            for field in fields
            if not field.isidentifier()
        )
    return problems


# --- repository layout -------------------------------------------------------------------------


def rel(root: Path, path: Path) -> str:
    """A path for messages: relative to the repository root when possible."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def find_integration(root: Path) -> tuple[Path | None, Problems]:
    """The integration folder: the only folder under ``custom_components/`` (HACS rule)."""
    base = root / "custom_components"
    if not base.is_dir():
        return None, ["custom_components/: missing (HACS expects custom_components/<domain>/)"]
    folders = sorted(
        path for path in base.iterdir() if path.is_dir() and path.name != "__pycache__"
    )
    if len(folders) != 1:
        names = ", ".join(path.name for path in folders) or "none"
        return None, [
            f"custom_components/: must hold exactly one integration folder (found: {names})"
        ]
    return folders[0], []


def read_json(path: Path) -> tuple[Any, str | None]:
    """The parsed JSON of a file, or an error message."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except UnicodeDecodeError as err:
        return None, f"is not UTF-8 ({err})"
    except json.JSONDecodeError as err:
        return None, f"is not valid JSON ({err})"


def read_yaml(path: Path) -> tuple[Any, str | None]:
    """The parsed YAML of a file, or an error message."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")), None
    except UnicodeDecodeError as err:
        return None, f"is not UTF-8 ({err})"
    except yaml.YAMLError as err:
        detail = " ".join(str(err).split())
        return None, f"is not valid YAML ({detail})"


def core_components_dir() -> Path | None:
    """The installed Home Assistant's ``components`` folder, if Home Assistant is installed."""
    try:
        spec = importlib.util.find_spec("homeassistant")
    except ImportError, ValueError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "components"
    return folder if folder.is_dir() else None


_TYPE_NAMES: Final[tuple[tuple[type, str], ...]] = (
    (bool, "boolean"),  # before int: bool is an int subclass
    (int, "number"),
    (float, "number"),
    (str, "string"),
    (list, "list"),
    (dict, "object"),
    (type(None), "null"),
)


def type_name(value: object) -> str:
    """The JSON/YAML name of a value's type, for messages."""
    return next(
        (name for kind, name in _TYPE_NAMES if isinstance(value, kind)), type(value).__name__
    )


# --- hacs.json ---------------------------------------------------------------------------------

# Keys of HACS_MANIFEST_JSON_SCHEMA (extra=PREVENT_EXTRA): the types each accepts, in words too.
_BOOL: Final = ((bool,), "true or false")
_STR: Final = ((str,), "a string")
HACS_KEY_TYPES: Final[Mapping[str, tuple[tuple[type, ...], str]]] = {
    "content_in_root": _BOOL,
    "country": ((str, list), "a string or a list"),
    "filename": _STR,
    "hacs": _STR,
    "hide_default_branch": _BOOL,
    "homeassistant": _STR,
    "name": _STR,
    "persistent_directory": _STR,
    "render_readme": _BOOL,
    "zip_release": _BOOL,
}


def check_hacs_json(root: Path) -> Problems:
    """``hacs.json`` against HACS's schema."""
    path = root / "hacs.json"
    where = "hacs.json"
    if not path.is_file():
        return [f"{where}: missing (HACS needs it at the repository root)"]
    data, error = read_json(path)
    if error is not None:
        return [f"{where}: {error}"]
    if not isinstance(data, dict):
        return [f"{where}: must be a JSON object, not a {type_name(data)}"]
    problems: Problems = []
    problems.extend(
        f"{where}: unknown key {key!r} (HACS accepts only {', '.join(sorted(HACS_KEY_TYPES))})"
        for key in data
        if key not in HACS_KEY_TYPES
    )
    if "name" not in data:
        problems.append(f"{where}: required key 'name' is missing")
    problems.extend(
        f"{where}: {key!r} must be {wanted}, not a {type_name(data[key])}"
        for key, (types, wanted) in HACS_KEY_TYPES.items()
        if key in data and not isinstance(data[key], types)
    )
    if isinstance(name := data.get("name"), str) and not name.strip():
        problems.append(f"{where}: 'name' must not be empty")
    if isinstance(ha := data.get("homeassistant"), str) and not is_ha_version(ha):
        problems.append(
            f"{where}: 'homeassistant' {ha!r} is not a Home Assistant version like '2026.10.0'"
        )
    if isinstance(hacs := data.get("hacs"), str) and not is_version(hacs):
        problems.append(f"{where}: 'hacs' {hacs!r} is not a valid version")
    country = data.get("country")
    codes = [country] if isinstance(country, str) else country if isinstance(country, list) else []
    problems.extend(
        f"{where}: 'country' entry {code!r} is not a two-letter country code"
        for code in codes
        if not (isinstance(code, str) and re.fullmatch(r"[A-Za-z]{2}", code))
    )
    if data.get("zip_release") is True and not data.get("filename"):
        problems.append(f"{where}: 'zip_release' needs 'filename' (the zip file's name)")
    return problems


# --- manifest.json -----------------------------------------------------------------------------

# Keys of hassfest's CUSTOM_INTEGRATION_MANIFEST_SCHEMA (INTEGRATION_MANIFEST_SCHEMA extended with
# version, issue_tracker and import_executor); the schema rejects every other key.
MANIFEST_KEYS: Final = frozenset(
    {
        "after_dependencies",
        "bluetooth",
        "codeowners",
        "config_flow",
        "dependencies",
        "dhcp",
        "disabled",
        "documentation",
        "domain",
        "homekit",
        "import_executor",
        "integration_type",
        "iot_class",
        "issue_tracker",
        "loggers",
        "mqtt",
        "name",
        "preview_features",
        "quality_scale",
        "requirements",
        "single_config_entry",
        "ssdp",
        "usb",
        "version",
        "zeroconf",
    }
)
# Required by hassfest (domain, name, documentation, codeowners, version, iot_class) or by HACS
# (codeowners, documentation, domain, issue_tracker, name, version).
MANIFEST_REQUIRED: Final = (
    "domain",
    "name",
    "codeowners",
    "documentation",
    "iot_class",
    "issue_tracker",
    "version",
)
IOT_CLASSES: Final = frozenset(
    {"assumed_state", "calculated", "cloud_polling", "cloud_push", "local_polling", "local_push"}
)
# hassfest: every IntegrationType except "virtual", which custom integrations cannot use.
INTEGRATION_TYPES: Final = frozenset(
    {"device", "entity", "hardware", "helper", "hub", "service", "system"}
)
MANIFEST_QUALITY_SCALES: Final = frozenset(
    {"bronze", "silver", "gold", "platinum", "custom", "no_score", "internal", "legacy"}
)
CORE_DOCUMENTATION_BASE: Final = "https://www.home-assistant.io/integrations"
# Project rule: packages with no musllinux wheels (and no usable sdist) cannot install on HA OS or
# the HA Container, so listing them would stop the integration from loading there.
FORBIDDEN_REQUIREMENTS: Final[Mapping[str, str]] = {
    "piper-tts": "installed at setup instead; it has no musllinux wheels (HA OS/Container)",
    "onnxruntime": "pulled in by piper-tts at setup; it has no musllinux wheels or sdist",
}
_BOOL_KEYS: Final = ("config_flow", "import_executor", "single_config_entry")
_STRING_LIST_KEYS: Final = ("loggers", "mqtt")


def _manifest_order_problem(data: dict[str, Any]) -> str | None:
    keys = list(data)
    front = [key for key in ("domain", "name") if key in data]
    expected = front + sorted(key for key in keys if key not in front)
    if keys == expected:
        return None
    return "keys are not sorted: domain, name, then alphabetical (" + ", ".join(expected) + ")"


def _domain_list_problems(
    root: Path, data: dict[str, Any], key: str, domain: str, components: Path | None
) -> list[str]:
    value = data[key]
    if not isinstance(value, list):
        return [f"{key!r} must be a list of domains, not a {type_name(value)}"]
    problems: list[str] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, str) or not RE_DOMAIN.match(item):
            problems.append(f"{key!r} entry {item!r} is not a domain (lowercase a-z, 0-9, _)")
            continue
        if item in seen:
            problems.append(f"{key!r} lists {item!r} twice")
        seen.add(item)
        if item == domain:
            problems.append(f"{key!r} lists the integration's own domain {item!r}")
        elif (
            components is not None
            and not (components / item / "manifest.json").is_file()
            and not (root / "custom_components" / item / "manifest.json").is_file()
        ):
            problems.append(f"{key!r} entry {item!r} is not a known integration")
    return problems


def _requirements_problems(value: Any) -> list[str]:
    if not isinstance(value, list):
        return [f"'requirements' must be a list of strings, not a {type_name(value)}"]
    problems: list[str] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, str):
            problems.append(f"'requirements' entry {item!r} is not a string")
            continue
        if (problem := requirement_problem(item)) is not None:
            problems.append(f"requirement {item!r} {problem}")
            continue
        match = RE_REQUIREMENT.match(item)
        name = normalize_package(match.group("name")) if match else item
        if name in seen:
            problems.append(f"requirement {item!r}: {name} is listed twice")
        seen.add(name)
        if (reason := FORBIDDEN_REQUIREMENTS.get(name)) is not None:
            problems.append(f"requirement {item!r} must not be listed: {name} is {reason}")
    return problems


def _manifest_value_problems(
    root: Path, folder: Path, data: dict[str, Any], components: Path | None
) -> list[str]:
    problems: list[str] = []
    domain = data.get("domain")
    if isinstance(domain, str):
        if domain != folder.name:
            problems.append(f"domain {domain!r} does not match the folder name {folder.name!r}")
        if not RE_DOMAIN.match(domain):
            problems.append(f"domain {domain!r} must be lowercase a-z, 0-9 and single '_'")
        if components is not None and (components / domain).is_dir():
            problems.append(
                f"domain {domain!r} collides with the built-in core integration {domain!r}"
            )
    elif "domain" in data:
        problems.append(f"'domain' must be a string, not a {type_name(domain)}")
    problems.extend(
        f"{key!r} must be a non-empty string"
        for key in ("name", "disabled")
        if key in data and not (isinstance(data[key], str) and data[key].strip())
    )
    if "version" in data:
        version = data["version"]
        if not isinstance(version, str) or not is_version(version):
            problems.append(
                f"'version' {version!r} is not a valid version "
                "(CalVer, SemVer, SimpleVer, BuildVer or PEP 440)"
            )
    if "codeowners" in data:
        owners = data["codeowners"]
        if not isinstance(owners, list):
            problems.append(f"'codeowners' must be a list, not a {type_name(owners)}")
        elif not owners:
            problems.append("'codeowners' is empty (integration-owner needs at least one)")
        else:
            problems.extend(
                f"'codeowners' entry {owner!r} is not a GitHub handle like '@name'"
                for owner in owners
                if not (isinstance(owner, str) and RE_CODEOWNER.match(owner))
            )
    if "documentation" in data:
        doc = data["documentation"]
        if not isinstance(doc, str) or not is_https_url(doc):
            problems.append(f"'documentation' {doc!r} is not an https URL")
        elif doc.startswith(CORE_DOCUMENTATION_BASE):
            problems.append(
                "'documentation' must point to this integration's own docs, "
                f"not {CORE_DOCUMENTATION_BASE}"
            )
    if "issue_tracker" in data:
        tracker = data["issue_tracker"]
        if not isinstance(tracker, str) or not is_http_url(tracker):
            problems.append(f"'issue_tracker' {tracker!r} is not an http(s) URL")
    if "iot_class" in data and data["iot_class"] not in IOT_CLASSES:
        problems.append(
            f"'iot_class' {data['iot_class']!r} is not one of {', '.join(sorted(IOT_CLASSES))}"
        )
    if "integration_type" in data and data["integration_type"] not in INTEGRATION_TYPES:
        problems.append(
            f"'integration_type' {data['integration_type']!r} is not one of "
            f"{', '.join(sorted(INTEGRATION_TYPES))}"
        )
    if "quality_scale" in data and data["quality_scale"] not in MANIFEST_QUALITY_SCALES:
        problems.append(
            f"'quality_scale' {data['quality_scale']!r} is not one of "
            f"{', '.join(sorted(MANIFEST_QUALITY_SCALES))}"
        )
    problems.extend(
        f"{key!r} must be true or false, not a {type_name(data[key])}"
        for key in _BOOL_KEYS
        if key in data and not isinstance(data[key], bool)
    )
    problems.extend(
        f"{key!r} must be a list of strings"
        for key in _STRING_LIST_KEYS
        if key in data
        and not (isinstance(data[key], list) and all(isinstance(v, str) for v in data[key]))
    )
    if data.get("config_flow") is True and not (folder / "config_flow.py").is_file():
        problems.append("'config_flow' is true but config_flow.py does not exist")
    own = domain if isinstance(domain, str) else folder.name
    for key in ("dependencies", "after_dependencies"):
        if key in data:
            problems.extend(_domain_list_problems(root, data, key, own, components))
    if "requirements" in data:
        problems.extend(_requirements_problems(data["requirements"]))
    return problems


def check_manifest(root: Path) -> Problems:
    """``manifest.json`` against hassfest's custom-integration rules, HACS and project rules."""
    folder, problems = find_integration(root)
    if folder is None:
        return problems
    path = folder / "manifest.json"
    where = rel(root, path)
    if not path.is_file():
        return [f"{where}: missing"]
    data, error = read_json(path)
    if error is not None:
        return [f"{where}: {error}"]
    if not isinstance(data, dict):
        return [f"{where}: must be a JSON object, not a {type_name(data)}"]
    found: list[str] = [
        f"unknown key {key!r} (hassfest's custom-integration schema rejects it)"
        for key in data
        if key not in MANIFEST_KEYS
    ]
    found.extend(f"required key {key!r} is missing" for key in MANIFEST_REQUIRED if key not in data)
    if (order := _manifest_order_problem(data)) is not None:
        found.append(order)
    found.extend(_manifest_value_problems(root, folder, data, core_components_dir()))
    return [f"{where}: {message}" for message in found]


# --- translations ------------------------------------------------------------------------------

# Top-level sections of hassfest's strings schema (gen_strings_schema).
STRINGS_SECTIONS: Final = frozenset(
    {
        "application_credentials",
        "common",
        "conditions",
        "config",
        "config_panel",
        "config_subentries",
        "conversation",
        "device",
        "device_automation",
        "entity",
        "entity_component",
        "exceptions",
        "issues",
        "options",
        "preview_features",
        "selector",
        "services",
        "system_health",
        "title",
        "triggers",
    }
)


def iter_leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every non-object value of a JSON tree with its dotted path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from iter_leaves(item, f"{path}.{key}" if path else str(key))
    else:
        yield path, value


def json_differences(left: Any, right: Any, path: str = "") -> list[str]:
    """Dotted paths where two JSON trees differ."""
    if isinstance(left, dict) and isinstance(right, dict):
        differences: list[str] = []
        for key in [*left, *(key for key in right if key not in left)]:
            child = f"{path}.{key}" if path else str(key)
            if key not in left or key not in right:
                differences.append(child)
            else:
                differences.extend(json_differences(left[key], right[key], child))
        return differences
    return [] if left == right else [path or "(top level)"]


def _flows(data: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The data-entry flows of a strings file: config, options and each subentry type."""
    for key in ("config", "options"):
        if key in data:
            yield key, data[key]
    subentries = data.get("config_subentries")
    if isinstance(subentries, dict):
        for name, flow in subentries.items():
            yield f"config_subentries.{name}", flow


def _data_description_problems(where: str, data: Any, descriptions: Any) -> list[str]:
    if data is None and descriptions is None:
        return []
    if not isinstance(data, dict):
        data = {}
    if not isinstance(descriptions, dict):
        if descriptions is not None:
            return [f"{where}.data_description must be an object"]
        descriptions = {}
    problems = [
        f"{where}.data.{key} has no data_description.{key} (config-flow quality rule)"
        for key in data
        if key not in descriptions
    ]
    problems.extend(
        f"{where}.data_description.{key} describes a field that is not in data"
        for key in descriptions
        if key not in data
    )
    return problems


def _structure_problems(data: dict[str, Any]) -> list[str]:
    problems = [
        f"unknown top-level section {key!r} (hassfest's strings schema rejects it)"
        for key in data
        if key not in STRINGS_SECTIONS
    ]
    for flow_name, flow in _flows(data):
        steps = flow.get("step") if isinstance(flow, dict) else None
        if not isinstance(steps, dict):
            problems.append(f"{flow_name}.step must be an object of steps")
            continue
        for step_id, step in steps.items():
            if not isinstance(step, dict):
                problems.append(f"{flow_name}.step.{step_id} must be an object")
                continue
            where = f"{flow_name}.step.{step_id}"
            problems.extend(
                _data_description_problems(where, step.get("data"), step.get("data_description"))
            )
            sections = step.get("sections")
            if isinstance(sections, dict):
                for name, section in sections.items():
                    if isinstance(section, dict):
                        problems.extend(
                            _data_description_problems(
                                f"{where}.sections.{name}",
                                section.get("data"),
                                section.get("data_description"),
                            )
                        )
    issues = data.get("issues", {})
    if isinstance(issues, dict):
        for issue_id, issue in issues.items():
            if not isinstance(issue, dict) or "title" not in issue:
                problems.append(f"issues.{issue_id} needs a title")
            elif ("description" in issue) == ("fix_flow" in issue):
                problems.append(f"issues.{issue_id} needs either a description or a fix_flow")
    exceptions = data.get("exceptions", {})
    if isinstance(exceptions, dict):
        problems.extend(
            f"exceptions.{key} needs a message"
            for key, value in exceptions.items()
            if not (isinstance(value, dict) and isinstance(value.get("message"), str))
        )
    return problems


def strings_content_problems(data: dict[str, Any]) -> list[str]:
    """Problems inside one translations tree, each prefixed with its dotted key path."""
    problems = _structure_problems(data)
    for path, value in iter_leaves(data):
        if not isinstance(value, str):
            problems.append(f"{path} must be a string, not a {type_name(value)}")
            continue
        problems.extend(f"{path} {problem}" for problem in translation_text_problems(value))
    return problems


def check_translations(root: Path) -> Problems:
    """``strings.json`` and ``translations/en.json``: identical, and valid for hassfest."""
    folder, problems = find_integration(root)
    if folder is None:
        return problems
    files = {"strings": folder / "strings.json", "en": folder / "translations" / "en.json"}
    if not any(path.is_file() for path in files.values()):
        manifest, _ = read_json(folder / "manifest.json")
        if isinstance(manifest, dict) and manifest.get("config_flow") is True:
            return [f"{rel(root, folder)}: has a config flow but no strings.json or en.json"]
        return []
    trees: dict[str, dict[str, Any]] = {}
    for key, path in files.items():
        where = rel(root, path)
        if not path.is_file():
            problems.append(f"{where}: missing (strings.json and translations/en.json go together)")
            continue
        data, error = read_json(path)
        if error is not None:
            problems.append(f"{where}: {error}")
        elif not isinstance(data, dict):
            problems.append(f"{where}: must be a JSON object, not a {type_name(data)}")
        else:
            trees[key] = data
    strings, english = trees.get("strings"), trees.get("en")
    if strings is not None and english is not None and strings != english:
        differences = json_differences(strings, english)
        shown = ", ".join(differences[:5]) + (" ..." if len(differences) > 5 else "")
        problems.append(
            f"{rel(root, files['en'])}: differs from strings.json at {shown} "
            "(project rule: keep them identical)"
        )
    for key, data in trees.items():
        if key == "en" and strings is not None and data == strings:
            continue  # identical content: report its problems once, against strings.json
        where = rel(root, files[key])
        problems.extend(f"{where}: {problem}" for problem in strings_content_problems(data))
    return problems


def check_json_files(root: Path) -> Problems:
    """Every JSON file of the integration parses (hassfest json plugin)."""
    folder, problems = find_integration(root)
    if folder is None:
        return problems
    for path in sorted(folder.rglob("*.json")):
        if "__pycache__" in path.parts:
            continue
        _, error = read_json(path)
        if error is not None:
            problems.append(f"{rel(root, path)}: {error}")
    return problems


# --- services ----------------------------------------------------------------------------------


def _translated(entry: Any, key: str) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get(key), str) and bool(entry[key].strip())


def _service_fields(schema: Any) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The fields (section fields included) and sections of one service, and shape problems."""
    fields: dict[str, Any] = {}
    sections: dict[str, Any] = {}
    problems: list[str] = []
    if schema is None:
        return fields, sections, problems
    if not isinstance(schema, dict):
        return fields, sections, ["must be a mapping or empty"]
    raw = schema.get("fields") or {}
    if not isinstance(raw, dict):
        return fields, sections, ["'fields' must be a mapping"]
    for name, field in raw.items():
        if isinstance(field, dict) and "fields" in field:
            sections[name] = field
            inner = field["fields"] or {}
            if not isinstance(inner, dict):
                problems.append(f"section {name!r} 'fields' must be a mapping")
                continue
            for inner_name, inner_field in inner.items():
                if inner_name in fields:
                    problems.append(f"field {inner_name!r} is used twice")
                fields[inner_name] = inner_field
        else:
            if name in fields:
                problems.append(f"field {name!r} is used twice")
            fields[name] = field
    return fields, sections, problems


def _service_translation_problems(
    service: str, schema: Any, entry: Any, selectors: Mapping[str, Any]
) -> list[str]:
    fields, sections, problems = _service_fields(schema)
    problems = [f"service {service!r} {problem}" for problem in problems]
    if not isinstance(entry, dict):
        return [*problems, f"service {service!r} has no translation (services.{service})"]
    problems.extend(
        f"service {service!r} has no {key} in services.{service}.{key}"
        for key in ("name", "description")
        if not _translated(entry, key)
    )
    translated_fields = entry.get("fields") or {}
    translated_fields = translated_fields if isinstance(translated_fields, dict) else {}
    for name, field in fields.items():
        problems.extend(
            f"service {service!r} field {name!r} has no {key} in "
            f"services.{service}.fields.{name}.{key}"
            for key in ("name", "description")
            if not _translated(translated_fields.get(name), key)
        )
        selector = field.get("selector") if isinstance(field, dict) else None
        select = selector.get("select") if isinstance(selector, dict) else None
        translation_key = select.get("translation_key") if isinstance(select, dict) else None
        if translation_key is not None and translation_key not in selectors:
            problems.append(
                f"service {service!r} field {name!r} uses selector translation key "
                f"{translation_key!r}, which is not in the selector section"
            )
    problems.extend(
        f"services.{service}.fields.{name} translates a field that services.yaml does not have"
        for name in translated_fields
        if name not in fields
    )
    translated_sections = entry.get("sections") or {}
    translated_sections = translated_sections if isinstance(translated_sections, dict) else {}
    problems.extend(
        f"service {service!r} section {name!r} has no name in "
        f"services.{service}.sections.{name}.name"
        for name in sections
        if not _translated(translated_sections.get(name), "name")
    )
    problems.extend(
        f"services.{service}.sections.{name} translates a section that services.yaml lacks"
        for name in translated_sections
        if name not in sections
    )
    return problems


def check_services(root: Path) -> Problems:
    """``services.yaml`` against the ``services`` translations, in both directions."""
    folder, problems = find_integration(root)
    if folder is None:
        return problems
    english_path = folder / "translations" / "en.json"
    strings_path = english_path if english_path.is_file() else folder / "strings.json"
    strings, _ = read_json(strings_path) if strings_path.is_file() else ({}, None)
    strings = strings if isinstance(strings, dict) else {}
    translations = strings.get("services") or {}
    translations = translations if isinstance(translations, dict) else {}
    selectors = strings.get("selector") or {}
    selectors = selectors if isinstance(selectors, dict) else {}
    strings_where = rel(root, strings_path)

    path = folder / "services.yaml"
    where = rel(root, path)
    services: dict[str, Any] = {}
    if not path.is_file():
        for source in sorted(folder.rglob("*.py")):
            if RE_SERVICE_REGISTRATION.search(source.read_text(encoding="utf-8")):
                problems.append(
                    f"{rel(root, source)}: registers service actions but {where} does not exist"
                )
    else:
        data, error = read_yaml(path)
        if error is not None:
            return [*problems, f"{where}: {error}"]
        if data is not None and not isinstance(data, dict):
            return [*problems, f"{where}: must be a mapping of services"]
        services = data or {}
    for service, schema in services.items():
        if not (isinstance(service, str) and RE_DOMAIN.match(service)):
            problems.append(f"{where}: service name {service!r} is not a slug")
            continue
        problems.extend(
            f"{where}: {problem}"
            for problem in _service_translation_problems(
                service, schema, translations.get(service), selectors
            )
        )
    missing = "services.yaml does not define" if path.is_file() else "has no services.yaml file"
    problems.extend(
        f"{strings_where}: services.{name} translates a service that {missing}"
        for name in translations
        if name not in services
    )
    return problems


# --- quality_scale.yaml ------------------------------------------------------------------------

# The Integration Quality Scale rules by tier (developers.home-assistant
# docs/core/integration-quality-scale/_includes/tiers.json, HEAD 2026-08-19).
QUALITY_SCALE_TIERS: Final[Mapping[str, tuple[str, ...]]] = {
    "bronze": (
        "action-setup",
        "appropriate-polling",
        "brands",
        "common-modules",
        "config-flow",
        "config-flow-test-coverage",
        "dependency-transparency",
        "docs-actions",
        "docs-conditions",
        "docs-high-level-description",
        "docs-installation-instructions",
        "docs-removal-instructions",
        "docs-triggers",
        "entity-event-setup",
        "entity-unique-id",
        "has-entity-name",
        "runtime-data",
        "test-before-configure",
        "test-before-setup",
        "unique-config-entry",
    ),
    "silver": (
        "action-exceptions",
        "config-entry-unloading",
        "docs-configuration-parameters",
        "docs-installation-parameters",
        "entity-unavailable",
        "integration-owner",
        "log-when-unavailable",
        "parallel-updates",
        "reauthentication-flow",
        "test-coverage",
    ),
    "gold": (
        "devices",
        "diagnostics",
        "discovery",
        "discovery-update-info",
        "docs-data-update",
        "docs-examples",
        "docs-known-limitations",
        "docs-supported-devices",
        "docs-supported-functions",
        "docs-troubleshooting",
        "docs-use-cases",
        "dynamic-devices",
        "entity-category",
        "entity-device-class",
        "entity-disabled-by-default",
        "entity-translations",
        "exception-translations",
        "icon-translations",
        "reconfiguration-flow",
        "repair-issues",
        "stale-devices",
    ),
    "platinum": ("async-dependency", "inject-websession", "strict-typing"),
}
RULE_TIER: Final[Mapping[str, str]] = {
    rule: tier for tier, rules in QUALITY_SCALE_TIERS.items() for rule in rules
}
RULE_STATUSES: Final = frozenset({"done", "todo", "exempt"})
# Rules that apply to every integration with service actions, so they cannot be exempt then.
ACTION_RULES: Final = ("action-setup", "docs-actions", "action-exceptions")


def _rule_status(rule: str, value: Any) -> tuple[str | None, list[str]]:
    """The status of one rule entry and what is wrong with its shape."""
    if isinstance(value, str):
        if value in {"done", "todo"}:
            return value, []
        if value == "exempt":
            return None, [f"rule {rule!r}: exempt must be written as {{status: exempt, comment}}"]
        return None, [f"rule {rule!r}: {value!r} is not done or todo"]
    if not isinstance(value, dict):
        return None, [f"rule {rule!r}: must be done, todo or {{status, comment}}"]
    problems = [
        f"rule {rule!r}: unknown key {key!r} (only status and comment)"
        for key in value
        if key not in {"status", "comment"}
    ]
    status = value.get("status")
    comment = value.get("comment")
    if status not in RULE_STATUSES:
        problems.append(f"rule {rule!r}: status {status!r} is not done, todo or exempt")
        status = None
    if comment is not None and not (isinstance(comment, str) and comment.strip()):
        problems.append(f"rule {rule!r}: comment must be non-empty text")
    elif status == "exempt" and comment is None:
        problems.append(f"rule {rule!r}: exempt needs a comment saying why")
    return status, problems


def check_quality_scale(root: Path) -> Problems:
    """``quality_scale.yaml`` (when present): shape, completeness, and the manifest's tier."""
    folder, problems = find_integration(root)
    if folder is None:
        return problems
    path = folder / "quality_scale.yaml"
    where = rel(root, path)
    if not path.is_file():
        return []
    data, error = read_yaml(path)
    if error is not None:
        return [f"{where}: {error}"]
    if not isinstance(data, dict) or not isinstance(data.get("rules"), dict):
        return [f"{where}: must be a mapping with a 'rules' mapping"]
    problems.extend(
        f"{where}: unknown top-level key {key!r} (only 'rules')" for key in data if key != "rules"
    )
    statuses: dict[str, str | None] = {}
    for rule, value in data["rules"].items():
        if rule not in RULE_TIER:
            problems.append(f"{where}: unknown rule {rule!r}")
            continue
        statuses[rule], found = _rule_status(rule, value)
        problems.extend(f"{where}: {problem}" for problem in found)
    problems.extend(
        f"{where}: rule {rule!r} ({tier}) is missing"
        for tier, rules in QUALITY_SCALE_TIERS.items()
        for rule in rules
        if rule not in data["rules"]
    )
    services, _ = (
        read_yaml(folder / "services.yaml") if (folder / "services.yaml").is_file() else ({}, None)
    )
    if isinstance(services, dict) and services:
        problems.extend(
            f"{where}: rule {rule!r} is exempt, but services.yaml defines service actions"
            for rule in ACTION_RULES
            if statuses.get(rule) == "exempt"
        )
    manifest, _ = read_json(folder / "manifest.json")
    claimed = manifest.get("quality_scale") if isinstance(manifest, dict) else None
    if isinstance(claimed, str) and claimed in QUALITY_SCALE_TIERS:
        tiers = list(QUALITY_SCALE_TIERS)
        for tier in tiers[: tiers.index(claimed) + 1]:
            problems.extend(
                f"{where}: manifest claims {claimed} but rule {rule!r} ({tier}) is "
                f"{statuses.get(rule) or 'not done'}"
                for rule in QUALITY_SCALE_TIERS[tier]
                if statuses.get(rule) not in {"done", "exempt"}
            )
    return problems


# --- brand images ------------------------------------------------------------------------------

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
# Square brand images and their minimum size (HA 2026.3+ local brand folder; HACS brands check).
BRAND_ICONS: Final[Mapping[str, int]] = {
    "icon.png": 256,
    "dark_icon.png": 256,
    "icon@2x.png": 512,
    "dark_icon@2x.png": 512,
}


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; ValueError if the header is not a valid PNG."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("is not a PNG (bad signature)")
    header = data[8:33]
    if len(header) < 25:
        raise ValueError("is truncated before the end of its IHDR chunk")
    length, kind = struct.unpack(">I4s", header[:8])
    if kind != b"IHDR" or length != 13:
        raise ValueError("does not start with a 13-byte IHDR chunk")
    body = header[8:21]
    (crc,) = struct.unpack(">I", header[21:25])
    if zlib.crc32(kind + body) != crc:
        raise ValueError("has a corrupt IHDR chunk (CRC mismatch)")
    width, height = struct.unpack(">II", body[:8])
    if width == 0 or height == 0:
        raise ValueError("has a zero width or height")
    return width, height


def check_brand_icon(root: Path) -> Problems:
    """``brand/icon.png`` exists, is a PNG, square, at least 256x256 (and likewise variants)."""
    folder, problems = find_integration(root)
    if folder is None:
        return problems
    for name, minimum in BRAND_ICONS.items():
        path = folder / "brand" / name
        where = rel(root, path)
        if not path.is_file():
            if name == "icon.png":
                problems.append(f"{where}: missing (HACS brands check; HA 2026.3+ serves it)")
            continue
        try:
            width, height = png_size(path.read_bytes())
        except ValueError as err:
            problems.append(f"{where}: {err}")
            continue
        if width != height:
            problems.append(f"{where}: must be square, is {width}x{height}")
        if min(width, height) < minimum:
            problems.append(f"{where}: must be at least {minimum}x{minimum}, is {width}x{height}")
    return problems


# --- __init__.py -------------------------------------------------------------------------------

SCHEMA_NAMES: Final = frozenset({"CONFIG_SCHEMA", "PLATFORM_SCHEMA", "PLATFORM_SCHEMA_BASE"})


def _bound_names(node: ast.stmt) -> set[str]:
    """Names a module-level statement binds by assignment or import."""
    match node:
        case ast.Assign(targets=targets):
            names: set[str] = set()
            for target in targets:
                elements = target.elts if isinstance(target, ast.Tuple | ast.List) else [target]
                names.update(e.id for e in elements if isinstance(e, ast.Name))
            return names
        case ast.AnnAssign(target=ast.Name(id=name)) | ast.AugAssign(target=ast.Name(id=name)):
            return {name}
        case ast.Import(names=aliases) | ast.ImportFrom(names=aliases):
            return {alias.asname or alias.name for alias in aliases}
        case _:
            return set()


def check_config_schema(root: Path) -> Problems:
    """hassfest config_schema: an ``__init__.py`` with ``async_setup``/``setup`` has a schema."""
    folder, problems = find_integration(root)
    if folder is None:
        return problems
    path = folder / "__init__.py"
    where = rel(root, path)
    if not path.is_file():
        return [f"{where}: missing"]
    try:
        module = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as err:
        return [f"{where}: does not parse (line {err.lineno}: {err.msg})"]
    setup = [
        node.name
        for node in module.body
        if (isinstance(node, ast.AsyncFunctionDef) and node.name == "async_setup")
        or (isinstance(node, ast.FunctionDef) and node.name == "setup")
    ]
    if not setup:
        return []
    bound: set[str] = set()
    for node in module.body:
        bound |= _bound_names(node)
    if bound & SCHEMA_NAMES:
        return []
    return [
        f"{where}: defines {setup[0]} but no CONFIG_SCHEMA (hassfest config_schema); "
        "use CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)"
    ]


# --- repository files --------------------------------------------------------------------------

GPL3_MARKERS: Final = ("GNU GENERAL PUBLIC LICENSE", "Version 3, 29 June 2007")


def check_repo_files(root: Path) -> Problems:
    """``README.md`` and a GPL-3.0 ``LICENSE`` at the repository root."""
    problems: Problems = []
    readme = root / "README.md"
    if not readme.is_file():
        problems.append("README.md: missing (HACS information check)")
    elif not readme.read_text(encoding="utf-8").strip():
        problems.append("README.md: is empty")
    license_path = root / "LICENSE"
    if not license_path.is_file():
        problems.append("LICENSE: missing (HACS license check needs an OSI license)")
        return problems
    text = " ".join(license_path.read_text(encoding="utf-8", errors="replace").split())
    head = text[:400].upper()
    if (
        not all(marker.upper() in head for marker in GPL3_MARKERS)
        or "LESSER" in head
        or "AFFERO" in head
    ):
        problems.append("LICENSE: is not the GNU General Public License version 3 text")
    return problems


# --- entry point -------------------------------------------------------------------------------

CHECKS: Final[tuple[Callable[[Path], Problems], ...]] = (
    check_hacs_json,
    check_manifest,
    check_translations,
    check_services,
    check_quality_scale,
    check_brand_icon,
    check_config_schema,
    check_json_files,
    check_repo_files,
)


def check_all(root: Path) -> Problems:
    """Every check's problems, in order, without repeating a line."""
    problems = [problem for check in CHECKS for problem in check(root)]
    return list(dict.fromkeys(problems))


def main(argv: list[str] | None = None) -> int:
    """Run every check on a repository and print one line per problem."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in {"-h", "--help"}):
        print(f"usage: {Path(__file__).name} [repo_root]", file=sys.stderr)
        return 2
    root = Path(args[0]) if args else Path(__file__).resolve().parent.parent
    if not root.is_dir():
        print(f"{root}: not a directory", file=sys.stderr)
        return 2
    problems = check_all(root)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} conformance problem(s)", file=sys.stderr)
        return 1
    print(f"conformance: all {len(CHECKS)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
