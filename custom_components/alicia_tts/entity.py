"""Base entity for the chain's status entities."""

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity

from .chain import EngineChain
from .const import DOMAIN, NAME
from .models import AliciaConfigEntry


def device_info(entry: AliciaConfigEntry) -> DeviceInfo:
    """The entry's service device, shared by all its entities."""
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=NAME,
        manufacturer=NAME,
        model="Piper (in-process)",
        entry_type=DeviceEntryType.SERVICE,
    )


class AliciaChainEntity(Entity):
    """An entity that shows the state of an entry's engine chain; pushed, never polled."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, entry: AliciaConfigEntry, key: str) -> None:
        """Name by translation key; unique per entry."""
        self._chain: EngineChain = entry.runtime_data.chain
        self._attr_translation_key = key
        self._attr_unique_id = f"{entry.entry_id}_{key}"
        self._attr_device_info = device_info(entry)

    async def async_added_to_hass(self) -> None:
        """Follow the chain's changes."""
        await super().async_added_to_hass()
        self.async_on_remove(self._chain.async_add_listener(self.async_write_ha_state))
