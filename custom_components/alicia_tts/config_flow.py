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
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.selector import (
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
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

from .chain import ENGINE_CHOICES, LOCAL
from .const import (
    CONF_AUDIO_FORMAT,
    CONF_BREAKER_COOLDOWN,
    CONF_BREAKER_THRESHOLD,
    CONF_ENGINE,
    CONF_FALLBACK_ENGINES,
    CONF_FIRST_AUDIO_TIMEOUT,
    CONF_SPEAKER_BASE_URL,
    CONF_VOICE,
    DEFAULT_BREAKER_COOLDOWN,
    DEFAULT_BREAKER_THRESHOLD,
    DEFAULT_FIRST_AUDIO_TIMEOUT,
    DOMAIN,
    VOICES_DIR,
)
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
        """Fallback chain, speaker base URL and audio format."""
        errors: dict[str, str] = {}
        own = er.async_entries_for_config_entry(er.async_get(self.hass), self.config_entry.entry_id)
        own_ids = [e.entity_id for e in own if e.domain == "tts"]
        if user_input is not None:
            base = str(user_input.get(CONF_SPEAKER_BASE_URL) or "").strip()
            fallbacks = list(user_input.get(CONF_FALLBACK_ENGINES) or [])
            if base and not valid_base_url(base):
                errors[CONF_SPEAKER_BASE_URL] = "invalid_url"
            else:
                options = {**self.config_entry.options, **user_input}
                options[CONF_FALLBACK_ENGINES] = fallbacks
                options[CONF_SPEAKER_BASE_URL] = base.rstrip("/")
                if not base:
                    del options[CONF_SPEAKER_BASE_URL]
                return self.async_create_entry(data=options)
        schema = vol.Schema(
            {
                vol.Optional(CONF_FALLBACK_ENGINES, default=[]): EntitySelector(
                    EntitySelectorConfig(domain="tts", multiple=True, exclude_entities=own_ids)
                ),
                vol.Required(CONF_ENGINE, default=LOCAL): SelectSelector(
                    SelectSelectorConfig(
                        options=list(ENGINE_CHOICES),
                        translation_key=CONF_ENGINE,
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                vol.Required(
                    CONF_FIRST_AUDIO_TIMEOUT, default=DEFAULT_FIRST_AUDIO_TIMEOUT
                ): NumberSelector(
                    NumberSelectorConfig(
                        min=1,
                        max=60,
                        step=0.5,
                        unit_of_measurement="s",
                        mode=NumberSelectorMode.BOX,
                    )
                ),
                vol.Required(
                    CONF_BREAKER_THRESHOLD, default=DEFAULT_BREAKER_THRESHOLD
                ): NumberSelector(
                    NumberSelectorConfig(min=1, max=20, step=1, mode=NumberSelectorMode.BOX)
                ),
                vol.Required(
                    CONF_BREAKER_COOLDOWN, default=DEFAULT_BREAKER_COOLDOWN
                ): NumberSelector(
                    NumberSelectorConfig(
                        min=10,
                        max=3600,
                        step=10,
                        unit_of_measurement="s",
                        mode=NumberSelectorMode.BOX,
                    )
                ),
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
