"""script/ha_instance.py against a real ``hass`` process: HTTP settings confirmed at start.

Home Assistant 2026.10 and later keep the YAML ``http:`` settings as a *pending* config and, when
nobody confirms them within five minutes, revert them and restart: a benchmark or demo running
longer than that loses its server. Rather than waiting five minutes, this checks what decides it:
the revert HA has scheduled, before and after the helper's confirmation.
"""

import importlib.util
from pathlib import Path
import sys
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "script" / "ha_instance.py"


def load_helper() -> ModuleType:
    """script/ha_instance.py as a module (scripts are not a package)."""
    spec = importlib.util.spec_from_file_location("ha_instance", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def http_config(ha: Any) -> dict[str, Any]:
    """HA's own view of its HTTP settings (websocket ``http/config``)."""
    answer: dict[str, Any] = ha.websocket({"type": "http/config"})
    assert answer["success"], answer
    result: dict[str, Any] = answer["result"]
    return result


@pytest.mark.usefixtures("socket_enabled")
def test_http_settings_are_confirmed(tmp_path: Path) -> None:
    """Unconfirmed, HA schedules the revert; the helper's confirmation cancels it for good."""
    helper = load_helper()
    with helper.home_assistant(tmp_path / "config", confirm_http=False) as ha:
        port = int(ha.url.rsplit(":", 1)[1])
        before = http_config(ha)
        assert before["revert_at"] is not None  # this HA version would restart in 5 minutes
        assert before["pending"]["server_port"] == port
        ha.confirm_http_config()
        after = http_config(ha)
        assert after["revert_at"] is None
        assert after["pending"] is None
        assert after["stable"]["server_port"] == port
        assert after["stable"]["server_host"] == ["127.0.0.1"]
        ha.confirm_http_config()  # nothing pending any more: a second call is harmless
        assert http_config(ha)["revert_at"] is None
