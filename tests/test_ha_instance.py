"""script/ha_instance.py: the scripts' library for running a real Home Assistant.

Against a real ``hass`` process: the HTTP settings hold from the first start. Home Assistant
2026.10 and later would take YAML ``http:`` settings as a *pending* config and, when nobody
confirms them within five minutes, revert them and restart (a benchmark or demo running longer
than that would lose its server), and show a repair issue about the YAML. Rather than waiting
five minutes, the test checks what decides it: HA's own view of its HTTP settings (confirmed,
nothing pending, no revert scheduled) and its repair issues.

Without Home Assistant: the config-flow driver's answers to a form.
"""

import importlib.util
from pathlib import Path
import sys
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "script" / "ha_instance.py"


def load_library() -> ModuleType:
    """script/ha_instance.py as a module (scripts are not a package)."""
    spec = importlib.util.spec_from_file_location("ha_instance", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def http_config(ha: Any) -> dict[str, Any]:
    """HA's own view of its HTTP settings (websocket ``http/config``)."""
    (result,) = await ha.api.ws({"type": "http/config"})
    assert isinstance(result, dict)
    return result


@pytest.mark.usefixtures("socket_enabled")
async def test_http_settings_hold(tmp_path: Path) -> None:
    """Loopback and the port are HA's confirmed HTTP settings: no revert, no repair issue."""
    library = load_library()
    async with library.home_assistant(tmp_path / "config") as ha:
        port = int(ha.url.rsplit(":", 1)[1])
        config = await http_config(ha)
        assert config["revert_at"] is None  # HA would not restart in 5 minutes
        assert config["pending"] is None
        assert config["stable"]["server_port"] == port
        assert config["stable"]["server_host"] == ["127.0.0.1"]
        yaml = (ha.config_dir / "configuration.yaml").read_text().splitlines()
        assert "http:" not in yaml  # no YAML settings that HA would migrate
        (issues,) = await ha.api.ws({"type": "repairs/list_issues"})
        assert [i["issue_id"] for i in issues["issues"] if i["domain"] == "http"] == []
    assert ha.process.poll() is not None  # stopped on exit


def test_form_answers() -> None:
    """Answers by field name, a select's first offered candidate, defaults elsewhere."""
    library = load_library()
    schema = [
        {
            "name": "language",
            "required": True,
            "selector": {"select": {"options": [{"value": "de-DE"}, {"value": "en-US"}]}},
        },
        {"name": "voice", "required": True, "selector": {"select": {"options": ["a", "b"]}}},
        {"name": "speed", "optional": True, "default": 1.0},
        {"name": "sound", "type": "expandable", "default": {}},
        {"name": "host", "required": True},
    ]
    answers = {
        "language": library.OneOf("en_US", "en-US"),
        "voice": library.OneOf("c"),
        "host": "127.0.0.1",
        "unasked": "ignored",
    }
    assert library.form_answers(schema, answers) == {
        "language": "en-US",  # the first candidate the select offers
        "voice": "c",  # none offered: the first candidate, for HA's validation to refuse
        "speed": 1.0,
        "host": "127.0.0.1",
    }
