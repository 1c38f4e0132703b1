"""Fix flow of the "voice too slow for this machine" repair issue.

It offers the voices the device check recommends (``device_check.recommend``: the same voice
family's lower quality, or the best installed or downloadable voice of the language expected
within the limit), each with its estimated real-time factor on this machine. The chosen voice is
switched to through the entry's own reconfigure flow (``config_flow.py``), driven here through
Home Assistant's flow manager: it checks that no other entry has the voice, keeps the options,
follows an automatic title and reloads the entry. A voice that has to be downloaded continues
in that reconfigure flow (``next_flow``), which shows the download's progress, verifies the
files and retries on failure like any reconfigure.
"""

from typing import Any, Final

from homeassistant import data_entry_flow
from homeassistant.components.repairs import FlowType, RepairsFlow, RepairsFlowResult
from homeassistant.config_entries import SOURCE_RECONFIGURE
from homeassistant.const import CONF_LANGUAGE
from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)
import probatio

from .catalog import format_size
from .config_flow import DOWNLOAD_MARK, STEP_RECONFIGURE, STEP_VOICE
from .const import CONF_VOICE, DOMAIN
from .device_check import Candidate
from .measurements import async_get_check, issue_placeholders

STEP_CHOOSE: Final = "choose_voice"
RECONFIGURED: Final = "reconfigure_successful"
# Reasons of the reconfigure flow shown as they are (the others: "switch_failed").
FLOW_ABORTS: Final = ("already_configured", "already_in_progress")


def candidate_label(candidate: Candidate) -> str:
    """'Joe (en-US, low) ~0.38' (expected real-time factor), download size when needed."""
    label = f"{candidate.name} ~{candidate.estimated_rtf:.2f}"
    if not candidate.installed:
        label += f" {DOWNLOAD_MARK} {format_size(candidate.size)}"
    return label


class SlowVoiceRepairFlow(RepairsFlow):
    """Choose a faster voice; the entry switches to it through its reconfigure flow."""

    def __init__(self, entry_id: str) -> None:
        """The entry whose voice is too slow."""
        self._entry_id = entry_id

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> RepairsFlowResult:
        """Start with the choice."""
        return await self.async_step_choose_voice()

    async def async_step_choose_voice(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        """Show the recommended voices; switch to the chosen one."""
        hass = self.hass
        entry = hass.config_entries.async_get_entry(self._entry_id)
        check = async_get_check(hass, self._entry_id)
        if entry is None or check is None or check.measurement is None:
            return self.async_abort(reason="not_measured")
        candidates = await check.async_candidates()
        if not candidates:
            return self.async_abort(reason="no_faster_voice")
        placeholders = {**issue_placeholders(entry.title, check.measurement), "error": ""}
        errors: dict[str, str] = {}
        if user_input is not None:
            chosen = next((c for c in candidates if c.key == user_input.get(CONF_VOICE)), None)
            if chosen is None:
                errors[CONF_VOICE] = "unknown_voice"
            else:
                result = await self._async_switch(entry.entry_id, chosen.language, chosen.key)
                if result is not None:
                    return result
                errors["base"] = "switch_failed"
        schema = probatio.Schema(
            {
                probatio.Required(CONF_VOICE, default=candidates[0].key): SelectSelector(
                    SelectSelectorConfig(
                        options=[
                            SelectOptionDict(value=c.key, label=candidate_label(c))
                            for c in candidates
                        ],
                        mode=SelectSelectorMode.LIST,
                    )
                )
            }
        )
        return self.async_show_form(
            step_id=STEP_CHOOSE,
            data_schema=schema,
            errors=errors,
            description_placeholders=placeholders,
        )

    async def _async_switch(
        self, entry_id: str, language: str, voice: str
    ) -> RepairsFlowResult | None:
        """Run the entry's reconfigure flow with ``voice``; None when it did not take it."""
        flows = self.hass.config_entries.flow
        result = await flows.async_init(
            DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry_id}
        )
        flow_id = result["flow_id"]
        for step_id, answer in (
            (STEP_RECONFIGURE, {CONF_LANGUAGE: language}),
            (STEP_VOICE, {CONF_VOICE: voice}),
        ):
            if result["type"] is data_entry_flow.FlowResultType.FORM and (
                result["step_id"] == step_id
            ):
                try:
                    result = await flows.async_configure(flow_id, answer)
                except data_entry_flow.InvalidData:  # not among what it offers (any more)
                    flows.async_abort(flow_id)
                    return None
        kind = result["type"]
        if kind is data_entry_flow.FlowResultType.ABORT:
            if result.get("reason") == RECONFIGURED:
                return self.async_create_entry(data={})
            reason = result.get("reason")
            return self.async_abort(reason=reason if reason in FLOW_ABORTS else "switch_failed")
        if kind is data_entry_flow.FlowResultType.FORM and result["step_id"] in (
            STEP_RECONFIGURE,
            STEP_VOICE,
        ):  # the voice (or its language) was refused: say so here
            flows.async_abort(flow_id)
            return None
        # A download (progress) or any further step continues in the reconfigure flow itself.
        return self.async_create_entry(data={}, next_flow=(FlowType.CONFIG_FLOW, flow_id))


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """The fix flow of a fixable Alicia TTS issue (only "voice too slow" is fixable)."""
    return SlowVoiceRepairFlow(str((data or {}).get("entry_id") or ""))
