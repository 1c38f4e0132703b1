"""The audioClip websocket on ``wss://127.0.0.N:1443/websocket/api`` (self-signed TLS)."""

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from .const import (
    API_KEY_HEADER,
    PAUSED,
    PLAYING,
    TRANSITIONING,
    WEBSOCKET_PORT,
    WEBSOCKET_PROTOCOL,
)
from .playback import SpeakerPlayback
from .records import AudioClip, WebsocketPeer


class WebsocketMixin(SpeakerPlayback):
    """The websocket API on port 1443: audio clips, their status events, getGroups."""

    async def _close_websockets(self, _app: web.Application) -> None:
        for ws in list(self._websockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"speaker stopping")

    # ---------------------------------------------------------------- websocket (audioClip)

    async def _handle_local_info(self, request: web.Request) -> web.StreamResponse:
        if not request.secure:
            raise web.HTTPNotFound
        if API_KEY_HEADER not in request.headers:
            raise web.HTTPUnauthorized
        return web.json_response(
            {
                "device": {
                    "id": self.uid,
                    "name": self.name,
                    "modelDisplayName": self.model_name,
                    "serialNumber": self.serial_number,
                    "softwareVersion": self.software_version,
                    "capabilities": self.capabilities(),
                },
                "householdId": self._household().household_id,
                "playerId": self.uid,
                "groupId": self.group_id,
                "websocketUrl": self.websocket_url(),
                "restUrl": f"https://{self.ip}:{WEBSOCKET_PORT}/api",
            }
        )

    def capabilities(self) -> list[str]:
        """Player capabilities as getGroups lists them."""
        caps = ["PLAYBACK", "CLOUD", "AIRPLAY", "VOICE", "SPEAKER_DETECTION"]
        if self.supports_audio_clip:
            caps.append("AUDIO_CLIP")
        return caps

    async def _handle_websocket(self, request: web.Request) -> web.StreamResponse:
        if not request.secure:
            raise web.HTTPNotFound
        if self.websocket_refuse is not None:
            return web.Response(status=self.websocket_refuse, text="websocket refused")
        if API_KEY_HEADER not in request.headers:
            raise web.HTTPUnauthorized(text="missing X-Sonos-Api-Key")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if WEBSOCKET_PROTOCOL not in offered:
            raise web.HTTPBadRequest(text=f"subprotocol {WEBSOCKET_PROTOCOL} required")
        ws = web.WebSocketResponse(protocols=(WEBSOCKET_PROTOCOL,))
        await ws.prepare(request)
        self._websockets.add(ws)
        peer = WebsocketPeer(ws)
        self._peers.add(peer)
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                answer = self.websocket_command(message.data, peer)
                async with peer.lock:
                    await ws.send_json(answer)
        finally:
            self._peers.discard(peer)
            self._websockets.discard(ws)
        return ws

    def websocket_command(
        self, text: str, peer: WebsocketPeer | None = None
    ) -> list[dict[str, Any]]:
        """Answer one ``[command, options]`` frame (``peer``: who sent it, for subscriptions)."""
        frame = _parse_frame(text)
        if isinstance(frame, str):
            return self._ws_error({}, "ERROR_INVALID_SYNTAX", frame)
        command, options = frame
        self.ws_log.append((command, options))
        namespace = command.get("namespace")
        name = command.get("command")
        if namespace == "audioClip:1" and name in ("subscribe", "unsubscribe"):
            return self._clip_subscription(command, peer)
        if namespace == "audioClip:1" and name in ("loadAudioClip", "cancelAudioClip"):
            return self._audio_clip_command(command, options)
        if namespace == "groups:1" and name == "getGroups":
            return [self._ws_header(command, "groups"), self._groups_body()]
        if not command:
            return self._ws_error(command, "ERROR_MISSING_PARAMETERS", "empty command")
        return self._ws_error(command, "ERROR_INVALID_COMMAND", f"{namespace} {name}")

    def _clip_subscription(
        self, command: dict[str, Any], peer: WebsocketPeer | None
    ) -> list[dict[str, Any]]:
        """``subscribe``/``unsubscribe``: ``audioClipStatus`` events to this client, or not."""
        if not self.supports_audio_clip:
            return self._ws_error(command, "ERROR_UNSUPPORTED_NAMESPACE", "audioClip:1")
        if not self.clip_status_events:
            return self._ws_error(command, "ERROR_INVALID_COMMAND", "no clip status events")
        if peer is not None:
            peer.subscribed = command.get("command") == "subscribe"
        return [self._ws_header(command, "none"), {}]

    def _audio_clip_command(
        self, command: dict[str, Any], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if not self.supports_audio_clip:
            return self._ws_error(command, "ERROR_UNSUPPORTED_NAMESPACE", "audioClip:1")
        if command.get("playerId") != self.uid:
            return self._ws_error(command, "ERROR_INVALID_OBJECT_ID", "unknown playerId")
        if command.get("command") == "loadAudioClip":
            return self._load_audio_clip(command, options)
        return self._cancel_audio_clip(command, options)

    def _ws_header(
        self, command: dict[str, Any], kind: str, *, success: bool = True
    ) -> dict[str, Any]:
        header: dict[str, Any] = {
            "householdId": self._household().household_id,
            "success": success,
            "type": kind,
        }
        if command.get("namespace"):
            header["namespace"] = command["namespace"]
        if command.get("command"):
            header["response"] = command["command"]
        if command.get("playerId"):
            header["playerId"] = command["playerId"]
        if "cmdId" in command:
            header["cmdId"] = command["cmdId"]
        return header

    def _ws_error(self, command: dict[str, Any], code: str, reason: str) -> list[dict[str, Any]]:
        return [
            self._ws_header(command, "globalError", success=False),
            {"_objectType": "globalError", "errorCode": code, "reason": reason},
        ]

    def _load_audio_clip(
        self, command: dict[str, Any], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        volume = options.get("volume")
        if volume is not None and (not isinstance(volume, int) or not 0 <= volume <= 100):
            return self._ws_error(command, "ERROR_INVALID_PARAMETER", "volume must be 0..100")
        url = options.get("streamUrl")
        clip = AudioClip(
            id=f"clip-{next(self._clip_ids)}",
            url=url if isinstance(url, str) else None,
            name=str(options.get("name", "")),
            app_id=str(options.get("appId", "")),
            priority=str(options.get("priority", "LOW")),
            clip_type="CUSTOM" if url else str(options.get("clipType", "CHIME")),
            volume=volume,
        )
        self.clips.append(clip)
        clip.history.append((clip.status, time.monotonic()))
        if clip.url:
            self._spawn(self._play_clip(clip), f"clip {clip.id}")
        else:
            self._clip_status(clip, "DONE")
        body = {
            "_objectType": "audioClip",
            "id": clip.id,
            "name": clip.name,
            "appId": clip.app_id,
            "priority": clip.priority,
            "clipType": clip.clip_type,
            "status": "ACTIVE",
        }
        return [self._ws_header(command, "audioClip"), body]

    async def _play_clip(self, clip: AudioClip) -> None:
        assert clip.url is not None
        record = await self.fetch_and_decode(
            clip.url, "audioclip", volume=clip.volume, clip_id=clip.id
        )
        clip.record = record
        if record.error is not None:
            self._clip_status(clip, "ERROR")
            return
        await asyncio.sleep(self.start_delay)  # buffering before the clip is heard
        if clip.status != "ACTIVE":
            return
        self._clip_status(clip, "ACTIVE")  # now it plays
        heard = (record.duration_s or 0.0) * max(0.0, self.playback_speed)
        with contextlib.suppress(TimeoutError):  # a dismissed clip stops playing at once
            await self.wait_for(lambda: clip.status != "ACTIVE", heard)
        if clip.status == "ACTIVE":
            self._clip_status(clip, "DONE")

    def _clip_status(self, clip: AudioClip, status: str) -> None:
        """Record a clip's status and tell the subscribers (an ``audioClipStatus`` event)."""
        clip.status = status
        clip.history.append((status, time.monotonic()))
        self._signal()
        header = {
            "namespace": "audioClip:1",
            "householdId": self._household().household_id,
            "playerId": self.uid,
            "type": "audioClipStatus",
        }
        event: list[dict[str, Any]] = [
            header,
            {"_objectType": "audioClipStatus", "audioClips": [clip.body()]},
        ]
        loop = asyncio.get_running_loop()
        for peer in self._peers:
            if peer.subscribed and not peer.ws.closed:
                peer.outbox.append((loop.time() + self.event_delay, event))
                if peer.sender is None or peer.sender.done():
                    peer.sender = self._spawn(self._send_ws_events(peer), "clip events")

    async def _send_ws_events(self, peer: WebsocketPeer) -> None:
        loop = asyncio.get_running_loop()
        while peer.outbox:
            due, event = peer.outbox[0]
            await asyncio.sleep(max(0.0, due - loop.time()))
            peer.outbox.popleft()
            if peer.ws.closed:
                continue
            async with peer.lock:
                try:
                    await peer.ws.send_json(event)
                except ConnectionError:
                    return  # the client went away

    def _cancel_audio_clip(
        self, command: dict[str, Any], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        clip = next((c for c in self.clips if c.id == options.get("id")), None)
        if clip is None:
            return self._ws_error(command, "ERROR_INVALID_OBJECT_ID", "unknown clip id")
        if clip.status == "ACTIVE":
            self._clip_status(clip, "DISMISSED")
        return [self._ws_header(command, "none"), {}]

    def _groups_body(self) -> dict[str, Any]:
        household = self._household()
        groups = []
        for members in household.groups():
            state = members[0].transport_state
            groups.append(
                {
                    "_objectType": "group",
                    "coordinatorId": members[0].uid,
                    "id": members[0].group_id,
                    "name": members[0].name,
                    "playbackState": {
                        PLAYING: "PLAYBACK_STATE_PLAYING",
                        TRANSITIONING: "PLAYBACK_STATE_BUFFERING",
                        PAUSED: "PLAYBACK_STATE_PAUSED",
                    }.get(state, "PLAYBACK_STATE_IDLE"),
                    "playerIds": [s.uid for s in members if s.bonded_to is None],
                }
            )
        players = [
            {
                "_objectType": "player",
                "id": s.uid,
                "name": s.name,
                "websocketUrl": s.websocket_url(),
                "softwareVersion": s.software_version,
                "apiVersion": "1.40.0",
                "minApiVersion": "1.1.0",
                "capabilities": s.capabilities(),
                "deviceIds": [s.uid],
                "icon": "",
            }
            for s in household.speakers
            if s.bonded_to is None
        ]
        return {"_objectType": "groups", "groups": groups, "partial": False, "players": players}


def _parse_frame(text: str) -> tuple[dict[str, Any], dict[str, Any]] | str:
    """A websocket frame as (command, options), or what is wrong with it."""
    try:
        payload = json.loads(text)
    except ValueError as err:
        return f"not JSON: {err}"
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not all(isinstance(part, dict) for part in payload)
    ):
        return "a frame is a JSON array [command, options] of two objects"
    return payload[0], payload[1]
