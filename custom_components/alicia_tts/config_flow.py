"""Config flow for Alicia TTS."""

from pathlib import Path
from typing import Any

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlowWithReload,
)
from homeassistant.core import callback
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol
from yarl import URL

from .const import CONF_AUDIO_FORMAT, CONF_SPEAKER_BASE_URL, CONF_VOICE, DOMAIN, VOICES_DIR
from .voices import VoiceInfo, discover_voices


class AliciaConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a Piper voice as a TTS engine."""

    VERSION = 1
    MINOR_VERSION = 1

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> AliciaOptionsFlow:
        """Options: how speakers get the audio."""
        return AliciaOptionsFlow()

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


def valid_base_url(value: str) -> bool:
    """An http(s) URL with a host and no path, query or fragment beyond a trailing slash."""
    try:
        url = URL(value)
    except ValueError:
        return False
    return (
        url.scheme in ("http", "https")
        and bool(url.host)
        and url.path in ("", "/")
        and not url.query_string
        and not url.fragment
    )


AUDIO_FORMATS = ["auto", "mp3", "wav"]


class AliciaOptionsFlow(OptionsFlowWithReload):
    """Options of an entry; saving reloads it."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Speaker base URL override and audio format."""
        errors: dict[str, str] = {}
        if user_input is not None:
            base = str(user_input.get(CONF_SPEAKER_BASE_URL) or "").strip()
            if base and not valid_base_url(base):
                errors[CONF_SPEAKER_BASE_URL] = "invalid_url"
            else:
                options = {**self.config_entry.options, **user_input}
                options[CONF_SPEAKER_BASE_URL] = base.rstrip("/")
                if not base:
                    del options[CONF_SPEAKER_BASE_URL]
                return self.async_create_entry(data=options)
        schema = vol.Schema(
            {
                vol.Optional(CONF_SPEAKER_BASE_URL): TextSelector(
                    TextSelectorConfig(type=TextSelectorType.URL)
                ),
                vol.Required(CONF_AUDIO_FORMAT, default="auto"): SelectSelector(
                    SelectSelectorConfig(
                        options=AUDIO_FORMATS,
                        translation_key=CONF_AUDIO_FORMAT,
                        mode=SelectSelectorMode.LIST,
                    )
                ),
            }
        )
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(schema, self.config_entry.options),
            errors=errors,
        )
