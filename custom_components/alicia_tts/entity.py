"""The entities' shared parts: the device, the platforms' set-up, the status entities' bases."""

from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, override

from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .chain import EngineChain
from .const import DOMAIN, NAME
from .models import AliciaConfigEntry

if TYPE_CHECKING:
    from .measurements import DeviceCheck


def device_info(entry: AliciaConfigEntry) -> DeviceInfo:
    """The entry's service device, shared by all its entities."""
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=NAME,
        manufacturer=NAME,
        model="Piper (in-process)",
        entry_type=DeviceEntryType.SERVICE,
    )


type EntitiesOf = Callable[[HomeAssistant, AliciaConfigEntry], Iterable[Entity]]
type SetupEntry = Callable[
    [HomeAssistant, AliciaConfigEntry, AddConfigEntryEntitiesCallback],
    Coroutine[Any, Any, None],
]


def platform_setup(entities_of: EntitiesOf) -> SetupEntry:
    """A platform's ``async_setup_entry``: it adds the entities ``entities_of`` makes."""

    async def async_setup_entry(
        hass: HomeAssistant,
        entry: AliciaConfigEntry,
        async_add_entities: AddConfigEntryEntitiesCallback,
    ) -> None:
        async_add_entities(list(entities_of(hass, entry)))

    return async_setup_entry


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
        self.async_on_remove(self._chain.listeners.add(self.async_write_ha_state))


class DeviceCheckEntity(Entity):
    """An entity of an entry's device check; pushed, never polled."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, check: DeviceCheck, key: str) -> None:
        """Name by translation key; unique per entry."""
        self._check = check
        self._attr_translation_key = key
        self._attr_unique_id = f"{check.entry.entry_id}_{key}"
        self._attr_device_info = device_info(check.entry)

    @property
    @override
    def available(self) -> bool:
        """Only with a local engine."""
        return self._check.engine is not None

    async def async_added_to_hass(self) -> None:
        """Follow the check's changes."""
        await super().async_added_to_hass()
        self.async_on_remove(self._check.listeners.add(self.async_write_ha_state))
