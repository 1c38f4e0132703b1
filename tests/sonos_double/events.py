"""GENA events: SUBSCRIBE/UNSUBSCRIBE on ``/.../Event`` and NOTIFY back to loopback callbacks.

Timing like a real speaker: events go out ``event_delay`` seconds after the change (default
``DEFAULT_EVENT_DELAY``, 100 ms), in order; ZoneGroupTopology events leave when the household
publishes a group change (itself ``event_delay`` late, see `topology`).
"""

import asyncio
import ipaddress
import re
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web

from .playback import SpeakerPlayback
from .records import Subscription
from .services import CONTROL_PATHS


class EventsMixin(SpeakerPlayback):
    """GENA SUBSCRIBE/UNSUBSCRIBE and NOTIFY delivery, in order, ``event_delay`` late."""

    # ---------------------------------------------------------------- events

    async def _handle_subscribe(self, request: web.Request) -> web.StreamResponse:
        service = CONTROL_PATHS[request.path.removesuffix("/Event")]
        timeout = _timeout_header(request.headers.get("TIMEOUT"))
        sid = request.headers.get("SID")
        headers = {"Server": self.user_agent, "TIMEOUT": f"Second-{timeout}"}
        if sid:  # renewal
            sub = self.subscriptions.get(sid)
            if sub is None or sub.service != service:
                return web.Response(status=412, reason="Precondition Failed")
            sub.timeout_s = timeout
            return web.Response(headers={**headers, "SID": sid})
        callback = re.search(r"<([^>]+)>", request.headers.get("CALLBACK", ""))
        if callback is None or request.headers.get("NT") != "upnp:event":
            return web.Response(status=412, reason="Precondition Failed")
        sid = f"uuid:{self.uid}_sub{next(self._sub_ids):010d}"
        self.subscriptions[sid] = Subscription(sid, service, callback[1], timeout)
        # The initial event goes out after the answer, as on a real speaker.
        self._spawn(self._send_initial_event(sid), f"initial event {service}")
        return web.Response(headers={**headers, "SID": sid})

    async def _send_initial_event(self, sid: str) -> None:
        await asyncio.sleep(0.01)
        sub = self.subscriptions.get(sid)
        if sub is not None:
            await self._notify(sub, self.event_body(sub.service))

    async def _handle_unsubscribe(self, request: web.Request) -> web.StreamResponse:
        sid = request.headers.get("SID", "")
        if self.subscriptions.pop(sid, None) is None:
            return web.Response(status=412, reason="Precondition Failed")
        return web.Response(headers={"Server": self.user_agent})

    def event_body(self, service: str) -> str:
        """The NOTIFY body with the current evented state of ``service``."""
        properties: dict[str, str] = {}
        if service == "AVTransport":
            properties["LastChange"] = self._avt_last_change()
        elif service == "RenderingControl":
            properties["LastChange"] = (
                '<Event xmlns="urn:schemas-upnp-org:metadata-1-0/RCS/"><InstanceID val="0">'
                f'<Volume channel="Master" val="{self.volume}"/>'
                f'<Mute channel="Master" val="{int(self.mute)}"/>'
                f'<Bass val="{self.bass}"/><Treble val="{self.treble}"/>'
                f'<Loudness channel="Master" val="{int(self.loudness)}"/>'
                f'<OutputFixed val="{int(self.output_fixed)}"/>'
                + "".join(f'<{name} val="{value}"/>' for name, value in self.eq.items())
                + "</InstanceID></Event>"
            )
        elif service == "GroupRenderingControl":
            properties["GroupVolume"] = str(self._group_volume())
            properties["GroupMute"] = "1" if all(s.mute for s in self.group_members) else "0"
            properties["GroupVolumeChangeable"] = "1"
        elif service == "ZoneGroupTopology":
            household = self._household()
            properties["ZoneGroupState"] = household.zone_group_state(published=True)
            properties["ZonePlayerUUIDsInGroup"] = ",".join(
                household.published_group(self._as_speaker)
            )
        elif service == "DeviceProperties":
            properties.update(ZoneName=self.name, Icon="x-rincon-roomicon:living", Invisible="0")
        elif service == "ContentDirectory":
            household = self._household()
            owner = household.speakers[0].uid if household.speakers else self.uid
            favorites = household.favorites_update_id
            properties.update(
                SystemUpdateID=str(favorites + self.queue_update_id),
                ContainerUpdateIDs=f"FV:2,{favorites},Q:0,{self.queue_update_id}",
                FavoritesUpdateID=f"{owner},{favorites}",
                FavoritePresetsUpdateID=f"{owner},{favorites}",
                SavedQueuesUpdateID=f"{owner},0",
                ShareListUpdateID=f"{owner},0",
                ShareIndexInProgress="0",
            )
        else:
            properties["AlarmListVersion"] = self._household().alarm_list_version
        props = "".join(
            f"<e:property><{k}>{escape(v)}</{k}></e:property>" for k, v in properties.items()
        )
        return (
            '<?xml version="1.0"?>'
            f'<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0">{props}</e:propertyset>'
        )

    def send_changed_events(self) -> None:
        """NOTIFY every subscriber whose evented state differs from what it last got."""
        if not self.subscriptions or self._runner is None:
            return
        for sub in list(self.subscriptions.values()):
            if sub.last_sent is None:
                continue  # its initial event is still on its way
            body = self.event_body(sub.service)
            if body != sub.last_sent:
                # Topology events leave when the household publishes the change (itself late).
                delay = 0.0 if sub.service == "ZoneGroupTopology" else self.event_delay
                self._queue_event(sub, body, delay)

    def _queue_event(self, sub: Subscription, body: str, delay: float) -> None:
        """Send ``body`` to ``sub`` after ``delay`` seconds, after what is queued before it."""
        sub.last_sent = body
        sub.outbox.append((asyncio.get_running_loop().time() + delay, body))
        if sub.sender is None or sub.sender.done():
            sub.sender = self._spawn(self._send_events(sub), f"events {sub.service}")

    async def _send_events(self, sub: Subscription) -> None:
        loop = asyncio.get_running_loop()
        while sub.outbox:
            due, body = sub.outbox[0]
            await asyncio.sleep(max(0.0, due - loop.time()))
            sub.outbox.popleft()
            if self.subscriptions.get(sub.sid) is sub:
                await self._notify(sub, body, mark=False)

    async def _notify(self, sub: Subscription, body: str, *, mark: bool = True) -> None:
        if mark:
            sub.last_sent = body
        host = urlsplit(sub.callback).hostname or ""
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback or self._session is None:
            self.notifications.append((sub.sid, sub.service, sub.seq, 0))
            return  # the double only ever talks to loopback addresses
        async with sub.lock:
            seq = sub.seq
            sub.seq += 1
            headers = {
                "NT": "upnp:event",
                "NTS": "upnp:propchange",
                "SID": sub.sid,
                "SEQ": str(seq),
                "Content-Type": 'text/xml; charset="utf-8"',
            }
            status = 0
            try:
                async with (
                    asyncio.timeout(5),
                    self._session.request(
                        "NOTIFY", sub.callback, data=body.encode(), headers=headers
                    ) as response,
                ):
                    status = response.status
            except TimeoutError, aiohttp.ClientError:
                status = -1
            self.notifications.append((sub.sid, sub.service, seq, status))


def _timeout_header(value: str | None) -> int:
    match = re.fullmatch(r"Second-(\d+)", (value or "").strip())
    return min(int(match[1]), 86400) if match else 86400
