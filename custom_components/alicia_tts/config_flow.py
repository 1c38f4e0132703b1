"""Config flow for Alicia TTS."""

from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)
import voluptuous as vol

from .const import CONF_VOICE, DOMAIN, VOICES_DIR
from .voices import VoiceInfo, discover_voices


class AliciaConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a Piper voice as a TTS engine."""

    VERSION = 1
    MINOR_VERSION = 1

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose the voice: the user's voices folder and the packaged voice."""
        voices: dict[str, VoiceInfo] = await self.hass.async_add_executor_job(
            discover_voices, Path(self.hass.config.path(VOICES_DIR))
        )
        if not voices:
            return self.async_abort(
                reason="no_voices",
                description_placeholders={"folder": self.hass.config.path(VOICES_DIR)},
            )
        errors: dict[str, str] = {}
        if user_input is not None:
            key = user_input[CONF_VOICE]
            if key in voices:
                await self.async_set_unique_id(key)
                self._abort_if_unique_id_configured()
                return self.async_create_entry(
                    title=voices[key].display_name, data={CONF_VOICE: key}
                )
            errors[CONF_VOICE] = "unknown_voice"
        ordered = sorted(voices.values(), key=lambda v: (v.language, v.key))
        schema = vol.Schema(
            {
                vol.Required(CONF_VOICE, default=ordered[0].key): SelectSelector(
                    SelectSelectorConfig(
                        options=[
                            SelectOptionDict(value=v.key, label=v.display_name) for v in ordered
                        ],
                        mode=SelectSelectorMode.DROPDOWN,
                    )
                )
            }
        )
        return self.async_show_form(step_id="user", data_schema=schema, errors=errors)
