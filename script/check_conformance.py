"""The project's own conformance rules: the ones no real validator checks for this integration.

Run: ``python script/check_conformance.py [repo_root]`` (default: the repository holding this
script). Prints one line per problem and exits 1 if there are any, 0 if all checks pass, 2 on a
usage error. Needs only the standard library and PyYAML.

What the real tools check is left to them: hacs.json, manifest.json, translation values,
quality_scale.yaml and the config schema are the rules of hassfest and the HACS action (which
need GitHub, so CI cannot run them; see docs/architecture.md), and the code style is checked by
Home Assistant core's own ruff rules (script/ha_ruff). These checks are stricter than those
tools, or check what they leave alone:

* ``strings.json`` and ``translations/en.json`` are identical (the integration ships no build
  step that would make one from the other).
* Every field of every config, options and subentry flow step (sections included) has a
  ``data_description``, and every ``data_description`` belongs to a field.
* ``services.yaml`` against the ``services`` translations, both ways: every service, field and
  section is translated (name and description), nothing translated is missing from
  ``services.yaml``, and a select selector's ``translation_key`` exists.
* ``brand/icon.png`` exists (and any dark/@2x variant): a PNG (IHDR parsed and CRC-checked),
  square, at least 256x256 (512 for @2x).
* ``manifest.json`` does not list ``piper-tts`` or ``onnxruntime`` in ``requirements``: they have
  no musllinux wheels, and a requirement that cannot install stops the integration loading on
  HA OS / HA Container (they are installed at setup instead).
"""

from collections.abc import Callable, Iterator, Mapping
import json
from pathlib import Path
import re
import struct
import sys
from typing import Any, Final
import zlib

import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; types-PyYAML is absent

type Problems = list[str]

# Code that registers service actions.
RE_SERVICE_REGISTRATION: Final = re.compile(
    r"hass\.services\.(?:async_)?register|async_register_entity_service"
    r"|async_register_admin_service"
)
RE_SLUG: Final = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
# The name of a PEP 508 requirement.
RE_REQUIREMENT_NAME: Final = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")

# --- repository layout -------------------------------------------------------------------------


def rel(root: Path, path: Path) -> str:
    """A path for messages: relative to the repository root when possible."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def find_integration(root: Path) -> tuple[Path | None, Problems]:
    """The integration folder: the only folder under ``custom_components/``."""
    base = root / "custom_components"
    if not base.is_dir():
        return None, ["custom_components/: missing"]
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


# --- translations ------------------------------------------------------------------------------


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
        f"{where}.data.{key} has no data_description.{key}"
        for key in data
        if key not in descriptions
    ]
    problems.extend(
        f"{where}.data_description.{key} describes a field that is not in data"
        for key in descriptions
        if key not in data
    )
    return problems


def data_description_problems(data: dict[str, Any]) -> list[str]:
    """Flow fields without a ``data_description``, and descriptions without a field."""
    problems: list[str] = []
    for flow_name, flow in _flows(data):
        steps = flow.get("step") if isinstance(flow, dict) else None
        if not isinstance(steps, dict):
            continue
        for step_id, step in steps.items():
            if not isinstance(step, dict):
                continue
            where = f"{flow_name}.step.{step_id}"
            problems.extend(
                _data_description_problems(where, step.get("data"), step.get("data_description"))
            )
            sections = step.get("sections")
            if isinstance(sections, dict):
                problems.extend(
                    problem
                    for name, section in sections.items()
                    if isinstance(section, dict)
                    for problem in _data_description_problems(
                        f"{where}.sections.{name}",
                        section.get("data"),
                        section.get("data_description"),
                    )
                )
    return problems


def check_translations(root: Path) -> Problems:
    """``strings.json`` and ``translations/en.json`` identical; every flow field described."""
    folder, problems = find_integration(root)
    if folder is None:
        return problems
    files = {"strings": folder / "strings.json", "en": folder / "translations" / "en.json"}
    if not any(path.is_file() for path in files.values()):
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
            problems.append(f"{where}: must be a JSON object")
        else:
            trees[key] = data
    strings, english = trees.get("strings"), trees.get("en")
    if strings is not None and english is not None and strings != english:
        differences = json_differences(strings, english)
        shown = ", ".join(differences[:5]) + (" ..." if len(differences) > 5 else "")
        problems.append(
            f"{rel(root, files['en'])}: differs from strings.json at {shown} (keep them identical)"
        )
    for key, data in trees.items():
        if key == "en" and strings is not None and data == strings:
            continue  # identical content: report its problems once, against strings.json
        where = rel(root, files[key])
        problems.extend(f"{where}: {problem}" for problem in data_description_problems(data))
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
        if not (isinstance(service, str) and RE_SLUG.match(service)):
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


# --- brand images ------------------------------------------------------------------------------

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
# Square brand images and their minimum size (HA 2026.3+ serves the integration's brand folder).
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
                problems.append(f"{where}: missing (HA 2026.3+ shows it for the integration)")
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


# --- manifest requirements ---------------------------------------------------------------------

# Packages with no musllinux wheels (and no usable sdist) cannot install on HA OS or the HA
# Container, so listing them would stop the integration from loading there.
FORBIDDEN_REQUIREMENTS: Final[Mapping[str, str]] = {
    "piper-tts": "installed at setup instead; it has no musllinux wheels (HA OS/Container)",
    "onnxruntime": "pulled in by piper-tts at setup; it has no musllinux wheels or sdist",
}


def check_requirements(root: Path) -> Problems:
    """``manifest.json`` ``requirements`` name no package that cannot install on musl."""
    folder, problems = find_integration(root)
    if folder is None:
        return problems
    path = folder / "manifest.json"
    data, error = read_json(path)
    if error is not None or not isinstance(data, dict):
        return []  # hassfest reports an unreadable manifest
    requirements = data.get("requirements")
    for item in requirements if isinstance(requirements, list) else []:
        match = RE_REQUIREMENT_NAME.match(item) if isinstance(item, str) else None
        if match is None:
            continue
        name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
        if (reason := FORBIDDEN_REQUIREMENTS.get(name)) is not None:
            problems.append(
                f"{rel(root, path)}: requirement {item!r} must not be listed: {name} is {reason}"
            )
    return problems


# --- entry point -------------------------------------------------------------------------------

CHECKS: Final[tuple[Callable[[Path], Problems], ...]] = (
    check_translations,
    check_services,
    check_brand_icon,
    check_requirements,
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
