"""`FakeSonosSpeaker`: one fake player, composed from the mixins of this package.

Assertions: ``played``, ``clips``, ``soap_log``, ``faults``, ``transport_history``, ``ws_log``,
``notifications``, ``errors`` (bugs in the double), ``transport_state``, ``position()``,
``status()``. Waiting: ``wait_played``, ``wait_idle``, ``wait_state``, ``wait_for``, and the
household's ``wait_topology`` (``publish_topology`` skips the delay in set-ups).

Timing like a real speaker: events (UPnP NOTIFY, websocket ``audioClipStatus``) go out
``event_delay`` seconds after the change (default ``DEFAULT_EVENT_DELAY``, 100 ms), in order; a
group change made through a speaker (join, leave) shows in the topology it reports
(``GetZoneGroupState``, ZoneGroupTopology events) only after that delay, while the speakers
already play as the new group; ``start_delay`` passes between a complete fetch and the start of
playing. The clip port can be closed (``websocket=False``) or refuse the handshake
(``websocket_refuse``). ``event_delay=0`` makes everything immediate.
"""

import asyncio

import aiohttp
from aiohttp import web

from .alarms import AlarmsMixin
from .av_transport import AVTransportMixin
from .const import SONOS_PORT, STATUS_PATH, WEBSOCKET_PATH, WEBSOCKET_PORT
from .content import ContentMixin
from .device_properties import DevicePropertiesMixin
from .didl import _int_arg
from .events import EventsMixin
from .records import Running
from .rendering import RenderingMixin
from .server import HttpMixin, self_signed_context
from .services import CONTROL_PATHS
from .state import Handler
from .topology import ZoneGroupTopologyMixin
from .websocket import WebsocketMixin


class FakeSonosSpeaker(
    AVTransportMixin,
    ContentMixin,
    RenderingMixin,
    DevicePropertiesMixin,
    ZoneGroupTopologyMixin,
    AlarmsMixin,
    EventsMixin,
    WebsocketMixin,
    HttpMixin,
    Running,
):
    """One fake player on ``ip``:1400 (UPnP) and ``ip``:1443 (audioClip websocket)."""

    def __repr__(self) -> str:
        """Name, address and state."""
        return f"<FakeSonosSpeaker {self.name!r} {self.ip} {self.uid} {self.transport_state}>"

    async def start(self) -> None:
        """Bind ip:1400 (and ip:1443 with TLS) on the running loop."""
        if self._runner is not None:
            return
        self._household()  # a household of its own unless it already has one
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_get("/xml/device_description.xml", self._handle_description)
        app.router.add_get("/xml/{file}", self._handle_scpd)
        app.router.add_get(WEBSOCKET_PATH, self._handle_websocket)
        app.router.add_get("/api/v1/players/local/info", self._handle_local_info)
        app.router.add_get("/status/batterystatus", self._handle_battery_status)
        app.router.add_get(STATUS_PATH, self._handle_double_status)
        for path in CONTROL_PATHS:
            app.router.add_post(f"{path}/Control", self._handle_control)
            app.router.add_route("SUBSCRIBE", f"{path}/Event", self._handle_subscribe)
            app.router.add_route("UNSUBSCRIBE", f"{path}/Event", self._handle_unsubscribe)
        app.on_shutdown.append(self._close_websockets)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        # Fetch from the speaker's own address, so servers see the client a real speaker is.
        self._session = aiohttp.ClientSession(
            headers={"User-Agent": self.user_agent},
            connector=aiohttp.TCPConnector(local_addr=(self.ip, 0)),
        )
        try:
            await web.TCPSite(runner, self.ip, SONOS_PORT, reuse_address=True).start()
            if self.websocket_enabled:
                context = self_signed_context(self.uid, self.ip)
                await web.TCPSite(
                    runner, self.ip, WEBSOCKET_PORT, ssl_context=context, reuse_address=True
                ).start()
        except OSError as err:
            await self.stop()
            raise OSError(
                err.errno, f"cannot bind fake Sonos speaker {self.name!r} on {self.ip}: {err}"
            ) from err

    async def stop(self) -> None:
        """Close websockets, cancel fetches and timers, unbind; leaves nothing running."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._tail = None
        self._cancel_sleep_timer()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
        self._signal()

    def _build_handlers(self) -> dict[tuple[str, str], Handler]:
        avt = {
            "SetAVTransportURI": self._set_av_transport_uri,
            "SetNextAVTransportURI": self._set_next_uri,
            "AddURIToQueue": self._add_uri_to_queue,
            "AddMultipleURIsToQueue": self._add_multiple_uris_to_queue,
            "RemoveTrackFromQueue": self._remove_track_from_queue,
            "RemoveAllTracksFromQueue": self._remove_all_tracks,
            "GetMediaInfo": self._get_media_info,
            "GetTransportInfo": self._get_transport_info,
            "GetPositionInfo": self._get_position_info,
            "GetTransportSettings": self._get_transport_settings,
            "SetPlayMode": self._set_play_mode,
            "GetCrossfadeMode": self._get_crossfade,
            "SetCrossfadeMode": self._set_crossfade,
            "GetCurrentTransportActions": self._get_transport_actions,
            "GetRemainingSleepTimerDuration": self._get_sleep_timer,
            "ConfigureSleepTimer": self._configure_sleep_timer,
            "GetRunningAlarmProperties": lambda _a: {},
            "Play": self._play,
            "Pause": self._pause,
            "Stop": self._stop,
            "Seek": self._seek,
            "Next": lambda _a: self._step_track(+1),
            "Previous": lambda _a: self._step_track(-1),
            "BecomeCoordinatorOfStandaloneGroup": self._become_standalone,
        }
        rcs = {
            "GetVolume": lambda _a: {"CurrentVolume": str(self.volume)},
            "SetVolume": self._set_volume,
            "SetRelativeVolume": self._set_relative_volume,
            "GetMute": lambda _a: {"CurrentMute": "1" if self.mute else "0"},
            "SetMute": self._set_mute,
            "GetBass": lambda _a: {"CurrentBass": str(self.bass)},
            "SetBass": lambda a: self._set_eq("bass", a["DesiredBass"]),
            "GetTreble": lambda _a: {"CurrentTreble": str(self.treble)},
            "SetTreble": lambda a: self._set_eq("treble", a["DesiredTreble"]),
            "GetLoudness": lambda _a: {"CurrentLoudness": "1" if self.loudness else "0"},
            "SetLoudness": self._set_loudness,
            "GetOutputFixed": lambda _a: {"CurrentFixed": "1" if self.output_fixed else "0"},
            "SetOutputFixed": self._set_output_fixed,
            "GetSupportsOutputFixed": lambda _a: {"CurrentSupportsFixed": "0"},
            "RampToVolume": self._ramp_to_volume,
            "GetEQ": self._get_eq,
            "SetEQ": self._set_eq_type,
        }
        grc = {
            "GetGroupVolume": lambda _a: {"CurrentVolume": str(self._group_volume())},
            "SetGroupVolume": lambda a: self._set_group_volume(_int_arg(a, "DesiredVolume")),
            "SetRelativeGroupVolume": lambda a: self._set_group_volume(
                self._group_volume() + _int_arg(a, "Adjustment")
            ),
            "GetGroupMute": lambda _a: {
                "CurrentMute": "1" if all(s.mute for s in self.group_members) else "0"
            },
            "SetGroupMute": self._set_group_mute,
            "SnapshotGroupVolume": lambda _a: {},
        }
        handlers: dict[tuple[str, str], Handler] = {}
        for service, table in (
            ("AVTransport", avt),
            ("RenderingControl", rcs),
            ("GroupRenderingControl", grc),
            ("ContentDirectory", {"Browse": self._browse}),
            (
                "ZoneGroupTopology",
                {
                    # What the household has confirmed so far (group changes lag, see join()).
                    "GetZoneGroupState": lambda _a: {
                        "ZoneGroupState": self._household().zone_group_state(published=True)
                    },
                    "GetZoneGroupAttributes": self._zone_group_attributes,
                },
            ),
            (
                "DeviceProperties",
                {
                    "GetHouseholdID": lambda _a: {
                        "CurrentHouseholdID": self._household().household_id
                    },
                    "GetZoneAttributes": lambda _a: {
                        "CurrentZoneName": self.name,
                        "CurrentIcon": "x-rincon-roomicon:living",
                        "CurrentConfiguration": "1",
                    },
                    "SetZoneAttributes": self._set_zone_attributes,
                    "GetZoneInfo": self._zone_info,
                    "GetLEDState": lambda _a: {"CurrentLEDState": "On" if self.led_on else "Off"},
                    "SetLEDState": self._set_led,
                    "GetButtonLockState": lambda _a: {
                        "CurrentButtonLockState": "On" if self.buttons_locked else "Off"
                    },
                    "SetButtonLockState": self._set_button_lock,
                },
            ),
            (
                "AlarmClock",
                {
                    "ListAlarms": lambda _a: {
                        "CurrentAlarmList": self._household().alarm_list_xml(),
                        "CurrentAlarmListVersion": self._household().alarm_list_version,
                    },
                    "CreateAlarm": lambda a: {"AssignedID": self._household().save_alarm(None, a)},
                    "UpdateAlarm": self._update_alarm,
                    "DestroyAlarm": self._destroy_alarm,
                },
            ),
        ):
            for action, handler in table.items():
                handlers[service, action] = handler
        return handlers
