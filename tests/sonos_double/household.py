"""`FakeHousehold` (speakers that see each other, favorites, alarms) and pytest/soco helpers.

Household-wide ``add_favorite``, ``add_alarm``; the groups and bonded sets are in
`topology.HouseholdTopology`. Test helpers: ``allow_loopback_hosts`` (after
``socket_enabled``), ``soco_reset``, ``soco_forget_topology``; ``apply_preset`` and
``parse_presets`` put speakers into the named states of ``PRESETS``.
"""

import asyncio
from collections import deque
from collections.abc import Iterable, Sequence
import itertools
from typing import Any, Self
from xml.sax.saxutils import quoteattr

from .const import (
    DEFAULT_EVENT_DELAY,
    DEFAULT_HOUSEHOLD_ID,
    DEFAULT_NAMES,
    LOOPBACK_HOSTS,
    PAUSED,
    PLAYING,
    PRESETS,
    STOPPED,
)
from .didl import parse_hms, radio_metadata
from .records import Favorite, Running, UPnPError
from .services import _ALARM_ARGS
from .speaker import FakeSonosSpeaker
from .topology import HouseholdTopology


class FakeHousehold(HouseholdTopology, Running):
    """Fake speakers that see each other: groups, zone group state, one household id."""

    def __init__(
        self,
        speakers: Iterable[FakeSonosSpeaker] = (),
        household_id: str = DEFAULT_HOUSEHOLD_ID,
        *,
        event_delay: float = DEFAULT_EVENT_DELAY,
    ) -> None:
        """Adopt ``speakers``.

        ``event_delay``: group changes made through a speaker (join, leave) show in the
        topology it reports (``GetZoneGroupState``, ZoneGroupTopology events) only this many
        seconds later, in order, as on real speakers; changes made directly on the household
        (test set-up) show at once.
        """
        self.household_id = household_id
        self.event_delay = event_delay
        self.speakers: list[FakeSonosSpeaker] = []
        self._in_change = False
        #: The topology speakers report: (group id, member uids, coordinator first) per group.
        self._published: list[tuple[str, list[str]]] = []
        self._pending_topology: deque[tuple[float, list[tuple[str, list[str]]]]] = deque()
        self._publisher: asyncio.Task[None] | None = None
        #: Household-wide, like on real players: every speaker lists the same favorites/alarms.
        self.favorites: list[Favorite] = []
        self.favorites_update_id = 1
        self.alarms: dict[str, dict[str, str]] = {}
        self._alarm_version = 0
        self._alarm_ids = itertools.count(1)
        for speaker in speakers:
            self.add(speaker)

    @classmethod
    def create(
        cls,
        count: int = 2,
        *,
        first_ip: int = 2,
        names: Sequence[str] | None = None,
        household_id: str = DEFAULT_HOUSEHOLD_ID,
        event_delay: float = DEFAULT_EVENT_DELAY,
        **speaker_options: Any,
    ) -> Self:
        """``count`` speakers on 127.0.0.{first_ip}, 127.0.0.{first_ip + 1}, ...

        ``event_delay`` applies to the household's topology and to every speaker's events.
        """
        if first_ip < 2 or first_ip + count > 255:
            raise ValueError("speakers live on 127.0.0.2 .. 127.0.0.254")
        names = list(names or DEFAULT_NAMES)
        while len(names) < count:
            names.append(f"Speaker {len(names) + 1}")
        return cls(
            (
                FakeSonosSpeaker(
                    names[i], f"127.0.0.{first_ip + i}", event_delay=event_delay, **speaker_options
                )
                for i in range(count)
            ),
            household_id=household_id,
            event_delay=event_delay,
        )

    def add(self, speaker: FakeSonosSpeaker) -> FakeSonosSpeaker:
        """Put ``speaker`` into this household (as a standalone group)."""
        if any(s.ip == speaker.ip for s in self.speakers):
            raise ValueError(f"two speakers on {speaker.ip}")
        speaker.household = self
        self.speakers.append(speaker)
        self._topology_changed(0.0, None)
        return speaker

    def by_uid(self, uid: str) -> FakeSonosSpeaker | None:
        """The speaker with this RINCON uid."""
        return next((s for s in self.speakers if s.uid == uid), None)

    def by_ip(self, ip: str) -> FakeSonosSpeaker | None:
        """The speaker on this address."""
        return next((s for s in self.speakers if s.ip == ip), None)

    def __getitem__(self, name: str) -> FakeSonosSpeaker:
        """The speaker called ``name``."""
        for speaker in self.speakers:
            if speaker.name == name:
                return speaker
        raise KeyError(name)

    async def start(self) -> None:
        """Start every speaker."""
        try:
            for speaker in self.speakers:
                await speaker.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every speaker."""
        for speaker in self.speakers:
            await speaker.stop()
        self.publish_topology()

    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until no speaker fetches, plays out or sends events."""
        async with asyncio.timeout(timeout):
            for speaker in self.speakers:
                await speaker.wait_idle(timeout)

    # ---------------------------------------------------------------- favorites and alarms

    def add_favorite(
        self, title: str, uri: str, metadata: str | None = None, description: str = ""
    ) -> Favorite:
        """Add a Sonos favorite (a radio station's metadata by default)."""
        favorite = Favorite(
            title,
            uri,
            radio_metadata(title) if metadata is None else metadata,
            description or "TuneIn Station",
        )
        self.favorites.append(favorite)
        self.favorites_update_id += 1
        self.changed()
        return favorite

    @property
    def alarm_list_version(self) -> str:
        """``<uid>:<n>``: changes whenever an alarm is created, updated or removed."""
        owner = self.speakers[0].uid if self.speakers else "RINCON_000E5800000001400"
        return f"{owner}:{self._alarm_version}"

    def add_alarm(
        self,
        speaker: FakeSonosSpeaker,
        start_time: str = "07:00:00",
        *,
        recurrence: str = "DAILY",
        enabled: bool = True,
        volume: int = 25,
    ) -> str:
        """Add an alarm for ``speaker`` (the buzzer, 2 hours); returns its ID."""
        return self.save_alarm(
            None,
            {
                "StartLocalTime": start_time,
                "Duration": "02:00:00",
                "Recurrence": recurrence,
                "Enabled": "1" if enabled else "0",
                "RoomUUID": speaker.uid,
                "ProgramURI": "x-rincon-buzzer:0",
                "ProgramMetaData": "",
                "PlayMode": "SHUFFLE_NOREPEAT",
                "Volume": str(volume),
                "IncludeLinkedZones": "0",
            },
        )

    def save_alarm(self, alarm_id: str | None, args: dict[str, str]) -> str:
        """CreateAlarm (``alarm_id`` None) or UpdateAlarm; UPnPError for bad arguments."""
        if alarm_id is not None and alarm_id not in self.alarms:
            raise UPnPError(402, f"no alarm {alarm_id}")
        try:
            parse_hms(args["StartLocalTime"])
        except ValueError:
            raise UPnPError(402, f"bad StartLocalTime {args['StartLocalTime']!r}") from None
        if self.by_uid(args["RoomUUID"]) is None:
            raise UPnPError(402, f"no room {args['RoomUUID']}")
        if alarm_id is None:
            alarm_id = str(next(self._alarm_ids))
        self.alarms[alarm_id] = {
            "ID": alarm_id,
            "StartTime": args["StartLocalTime"],
            **{k: args[k] for k in _ALARM_ARGS if k != "StartLocalTime"},
        }
        self._alarm_version += 1
        self.changed()
        return alarm_id

    def destroy_alarm(self, alarm_id: str) -> None:
        """DestroyAlarm."""
        if self.alarms.pop(alarm_id, None) is None:
            raise UPnPError(402, f"no alarm {alarm_id}")
        self._alarm_version += 1
        self.changed()

    def alarm_list_xml(self) -> str:
        """``CurrentAlarmList`` of ListAlarms."""
        alarms = "".join(
            "<Alarm " + " ".join(f"{k}={quoteattr(v)}" for k, v in alarm.items()) + "/>"
            for alarm in self.alarms.values()
        )
        return f"<Alarms>{alarms}</Alarms>"

    def changed(self) -> None:
        """Something changed: send UPnP events to subscribers whose state differs."""
        if self._in_change:
            return
        self._in_change = True
        try:
            for speaker in self.speakers:
                speaker.send_changed_events()
        finally:
            self._in_change = False


def allow_loopback_hosts(hosts: Iterable[str] = LOOPBACK_HOSTS) -> None:
    """Let sockets connect to the fake speakers under pytest-socket.

    The HA pytest plugin allows only 127.0.0.1 before each test; call this afterwards (from a
    fixture that also requests ``socket_enabled``).
    """
    import socket

    import pytest_socket

    if socket.socket.__name__ == "GuardedSocket":
        # socket_allow_hosts patches socket.socket.connect: done on pytest-socket's guard
        # subclass it would not reach the real socket class once socket_enabled restores it.
        raise RuntimeError("request the socket_enabled fixture before allow_loopback_hosts()")
    pytest_socket.socket_allow_hosts(list(hosts))


def soco_reset() -> None:
    """Forget soco 0.31's cached SoCo instances and zone group states (call between tests)."""
    import soco.core

    soco.core.soco_reset()  # clears _ArgsSingleton._instances, the SoCo singletons
    soco.core.SoCo.zone_group_states.clear()  # class-level {household_id: ZoneGroupState}


def soco_forget_topology() -> None:
    """Make soco re-read group topology on its next look (its cache lasts 5 s)."""
    import soco.core

    for state in soco.core.SoCo.zone_group_states.values():
        state.clear_cache()


def apply_preset(speaker: FakeSonosSpeaker, preset: str) -> None:
    """Put a speaker into one of the named states of ``PRESETS``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    state = PAUSED if preset.endswith("-paused") else PLAYING
    if preset.startswith("radio"):
        speaker.preset_radio(state=state)
    elif preset.startswith("queue"):
        speaker.preset_queue(8, track=3, position="0:01:23", state=state)
    elif preset == "line-in":
        speaker.preset_line_in()
    elif preset == "tv":
        speaker.preset_tv()
    else:
        speaker.preset_source("", state=STOPPED)


def parse_presets(values: Sequence[str], household: FakeHousehold) -> None:
    """Apply ``ROOM=PRESET`` command-line values; ValueError for an unknown room or preset."""
    for value in values:
        room, _, preset = value.partition("=")
        try:
            speaker = household[room]
        except KeyError:
            names = ", ".join(s.name for s in household.speakers)
            raise ValueError(f"no speaker {room!r} (speakers: {names})") from None
        apply_preset(speaker, preset)
