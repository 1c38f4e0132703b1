"""Groups and bonded sets: ZoneGroupTopology on a speaker, the household's ZoneGroupState.

Bonded sets (``FakeHousehold.bond_pair``, ``bond_theatre``): a stereo pair's second speaker is
an ``Invisible="1"`` ``ZoneGroupMember`` with the pair's ``ChannelMapSet``; a home theatre's Sub
and surrounds are ``Satellite`` elements of the main speaker with its ``HTSatChanMapSet``. The
set moves between groups with its main speaker and shares its volume and mute; what the main
speaker plays through AVTransport every member plays too (a `PlaybackRecord` with
``bonded_from`` and ``channel`` in each member's ``played``), while an audio clip plays on the
main speaker and its Sub only, as on real sets.
"""

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Literal
from xml.sax.saxutils import quoteattr

from .const import PLAYING, STOPPED, TRANSITIONING, WEBSOCKET_PORT
from .playback import SpeakerPlayback

if TYPE_CHECKING:
    from .speaker import FakeSonosSpeaker


class ZoneGroupTopologyMixin(SpeakerPlayback):
    """A speaker's side of groups: ZoneGroupTopology attributes, leaving a group."""

    def _zone_group_attributes(self, _args: dict[str, str]) -> dict[str, str]:
        members = self.group_members
        name = members[0].name + (f" + {len(members) - 1}" if len(members) > 1 else "")
        return {
            "CurrentZoneGroupName": name,
            "CurrentZoneGroupID": self.group_id,
            "CurrentZonePlayerUUIDsInGroup": ",".join(s.uid for s in members),
            "CurrentMuseHouseholdId": self._household().household_id,
        }

    def _become_standalone(self, _args: dict[str, str]) -> dict[str, str]:
        delegate = self._household().make_standalone(
            self._as_speaker, publish_after=self.event_delay, via=self._as_speaker
        )
        return {
            "DelegatedGroupCoordinatorID": delegate.uid if delegate else "",
            "NewGroupID": self.group_id,
        }


class HouseholdTopology:
    """The household's groups and bonded sets, and the topology its speakers report.

    The base of `household.FakeHousehold`, which sets these attributes up.
    """

    speakers: list[FakeSonosSpeaker]
    _published: list[tuple[str, list[str]]]
    _pending_topology: deque[tuple[float, list[tuple[str, list[str]]]]]
    _publisher: asyncio.Task[None] | None

    if TYPE_CHECKING:
        # household.FakeHousehold
        def by_uid(self, uid: str) -> FakeSonosSpeaker | None: ...
        def changed(self) -> None: ...

    # ---------------------------------------------------------------- groups

    def groups(self) -> list[list[FakeSonosSpeaker]]:
        """Each group as a list, coordinator first."""
        return [s.group_members for s in self.speakers if s.is_coordinator]

    def join(
        self,
        member: FakeSonosSpeaker,
        target: FakeSonosSpeaker,
        *,
        publish_after: float = 0.0,
        via: FakeSonosSpeaker | None = None,
    ) -> None:
        """Let ``member`` join ``target``'s group (what ``x-rincon:{uid}`` does).

        The speakers play as a group at once; the topology they report shows it
        ``publish_after`` seconds later (SOAP: the event delay; here, for set-ups: at once).
        soco caches the topology for 5 s: after changing groups here rather than through
        soco, call `soco_forget_topology` before asking soco about groups.
        """
        coordinator = target.coordinator
        if coordinator is member:
            return
        if not member.is_coordinator:
            member.coordinator.group_seq += 1
        for follower in member.group_members[1:] if member.is_coordinator else []:
            if follower.bonded_to is None:
                self._leave(follower)
        member._cancel_playback()
        if member.transport_state != STOPPED:
            member._set_state(STOPPED)
        member.coordinator_uid = coordinator.uid
        member.current_uri = f"x-rincon:{coordinator.uid}"
        member.current_meta = ""
        member.group_seq += 1
        coordinator.group_seq += 1
        self._topology_changed(publish_after, via)
        self.changed()

    def _leave(self, speaker: FakeSonosSpeaker) -> None:
        speaker.coordinator_uid = speaker.uid
        speaker.current_uri = ""
        speaker.current_meta = ""
        speaker.track_number = 0
        speaker.group_seq += 1
        if speaker.transport_state != STOPPED:
            speaker._set_state(STOPPED)

    def make_standalone(
        self,
        speaker: FakeSonosSpeaker,
        *,
        publish_after: float = 0.0,
        via: FakeSonosSpeaker | None = None,
    ) -> FakeSonosSpeaker | None:
        """Take ``speaker`` out of its group; return who now leads the rest, if anyone.

        The topology shows it ``publish_after`` seconds later (see `join`).
        """
        coordinator = speaker.coordinator
        if coordinator is not speaker:
            coordinator.group_seq += 1
            self._leave(speaker)
            self._topology_changed(publish_after, via)
            self.changed()
            return None
        followers = [s for s in speaker.group_members[1:] if s.bonded_to is None]
        if not followers:
            speaker.group_seq += 1
            self._topology_changed(publish_after, via)
            return None
        # A leaving coordinator hands the group and what it plays to the next member.
        delegate = followers[0]
        delegate.coordinator_uid = delegate.uid
        for name in (
            "current_uri",
            "current_meta",
            "track_number",
            "track_duration",
            "play_mode",
            "crossfade",
            "_position",
        ):
            setattr(delegate, name, getattr(speaker, name))
        if delegate._is_queue_source() or speaker._is_queue_source():
            delegate.queue = list(speaker.queue)
            delegate.current_uri = f"x-rincon-queue:{delegate.uid}#0"
        delegate.group_seq += 1
        if speaker._loaded is not None and speaker.transport_state == PLAYING:
            delegate._loaded = speaker._loaded  # the fetched file plays on where it was
            delegate._position = speaker.position()
            delegate._resume()
        elif speaker.transport_state != delegate.transport_state:
            delegate._set_state(
                speaker.transport_state if speaker.transport_state != TRANSITIONING else PLAYING
            )
        for follower in followers[1:]:
            follower.coordinator_uid = delegate.uid
            follower.current_uri = f"x-rincon:{delegate.uid}"
        speaker._cancel_playback()
        self._leave(speaker)
        self._topology_changed(publish_after, via)
        self.changed()
        return delegate

    def bond_pair(self, left: FakeSonosSpeaker, right: FakeSonosSpeaker) -> None:
        """Make ``left`` and ``right`` a stereo pair; ``left`` is the main (visible) speaker."""
        self._bond(left, {right: "RF,RF"}, "pair", "LF,LF")

    def bond_theatre(
        self,
        main: FakeSonosSpeaker,
        *,
        sub: FakeSonosSpeaker | None = None,
        surrounds: tuple[FakeSonosSpeaker, FakeSonosSpeaker] | None = None,
    ) -> None:
        """Make ``main`` (a soundbar) a home theatre with a Sub and/or two surrounds."""
        members: dict[FakeSonosSpeaker, str] = {}
        if sub is not None:
            members[sub] = "SW"
        if surrounds is not None:
            members[surrounds[0]] = "LR"
            members[surrounds[1]] = "RR"
        self._bond(main, members, "theatre", "LF,RF")

    def _bond(
        self,
        main: FakeSonosSpeaker,
        members: dict[FakeSonosSpeaker, str],
        kind: Literal["pair", "theatre"],
        channel: str,
    ) -> None:
        if not members:
            raise ValueError("a bonded set needs a second speaker")
        for speaker in (main, *members):
            if speaker.bond_kind is not None:
                raise ValueError(f"{speaker.name} is already bonded")
            self.make_standalone(speaker)
        main.bond_kind, main.channel = kind, channel
        for member, member_channel in members.items():
            member.bonded_to, member.bond_kind, member.channel = main, kind, member_channel
            member.volume, member.mute = main.volume, main.mute
            member.group_seq += 1
        main.group_seq += 1
        self._topology_changed(0.0, None)
        self.changed()

    @staticmethod
    def channel_map(main: FakeSonosSpeaker) -> str:
        """The set's ``ChannelMapSet``/``HTSatChanMapSet``: ``uid:channel;uid:channel``."""
        return ";".join(f"{s.uid}:{s.channel}" for s in (main, *main.bonded_members))

    def _live_topology(self) -> list[tuple[str, list[str]]]:
        return [(members[0].group_id, [s.uid for s in members]) for members in self.groups()]

    def _topology_changed(self, delay: float, via: FakeSonosSpeaker | None) -> None:
        """Publish the current groups now, or after ``delay`` (in order of the changes)."""
        topology = self._live_topology()
        if (delay <= 0 or via is None) and not self._pending_topology:
            self._published = topology
            return
        now = asyncio.get_running_loop().time()
        self._pending_topology.append((now + max(0.0, delay), topology))
        if self._publisher is None or self._publisher.done():
            speaker = via or self.speakers[0]
            self._publisher = speaker._spawn(self._publish_topology(), "topology")

    async def _publish_topology(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending_topology:
            due, topology = self._pending_topology[0]
            await asyncio.sleep(max(0.0, due - loop.time()))
            self._pending_topology.popleft()
            self._published = topology
            self.changed()  # ZoneGroupTopology events go out now
            for speaker in self.speakers:
                speaker._signal()

    @property
    def topology_settled(self) -> bool:
        """Whether the topology speakers report shows every group change made so far."""
        return not self._pending_topology

    def publish_topology(self) -> None:
        """Show every pending group change in the reported topology now (test set-ups)."""
        if self._publisher is not None:
            self._publisher.cancel()
            self._publisher = None
        self._pending_topology.clear()
        self._published = self._live_topology()
        self.changed()

    async def wait_topology(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the reported topology shows every group change made so far."""
        if self.speakers:
            await self.speakers[0].wait_for(lambda: self.topology_settled, timeout)

    def published_group(self, speaker: FakeSonosSpeaker) -> list[str]:
        """The uids of ``speaker``'s group as the reported topology has it, coordinator first."""
        return next((uids for _, uids in self._published if speaker.uid in uids), [speaker.uid])

    def zone_group_state(self, *, published: bool = False) -> str:
        """The ZoneGroupState XML: the groups as they are, or (``published``) as reported.

        Speakers answer ``GetZoneGroupState`` and send ZoneGroupTopology events with the
        published form, which shows a group change made through a speaker only after the
        household's ``event_delay``.
        """
        groups = []
        for group_id, uids in self._published if published else self._live_topology():
            members = [s for uid in uids if (s := self.by_uid(uid)) is not None]
            if not members:
                continue
            zones = "".join(
                self._member_xml(s) for s in members if s.bonded_to is None or s.bond_kind == "pair"
            )
            groups.append(
                f'<ZoneGroup Coordinator="{members[0].uid}" ID="{group_id}">{zones}</ZoneGroup>'
            )
        return (
            f"<ZoneGroupState><ZoneGroups>{''.join(groups)}</ZoneGroups>"
            "<VanishedDevices></VanishedDevices></ZoneGroupState>"
        )

    def _member_xml(self, speaker: FakeSonosSpeaker, tag: str = "ZoneGroupMember") -> str:
        attributes = {
            "UUID": speaker.uid,
            "Location": f"{speaker.base_url}/xml/device_description.xml",
            "ZoneName": speaker.name,
            "Icon": "x-rincon-roomicon:living",
            "Configuration": "1",
            "SoftwareVersion": speaker.software_version,
            "SWGen": "2",
            "MinCompatibleVersion": "84.0-00000",
            "LegacyCompatibleVersion": "58.0-00000",
            "BootSeq": str(speaker.boot_seq),
            "TVConfigurationError": "0",
            "HdmiCecAvailable": "0",
            "WirelessMode": "0",
            "WirelessLeafOnly": "0",
            "ChannelFreq": "2412",
            "BehindWifiExtender": "0",
            "WifiEnabled": "1",
            "EthLink": "1",
            "Orientation": "0",
            "RoomCalibrationState": "4",
            "SecureRegState": "3",
            "VoiceConfigState": "0",
            "MicEnabled": "0",
            "AirPlayEnabled": "1",
            "IdleState": "1",
            "MoreInfo": "",
            "SSLPort": str(WEBSOCKET_PORT),
            "HHSSLPort": "1843",
        }
        main = speaker.bonded_to or speaker
        satellites = ""
        if speaker.bond_kind == "pair":
            attributes["ChannelMapSet"] = self.channel_map(main)
        elif speaker.bond_kind == "theatre":
            attributes["HTSatChanMapSet"] = self.channel_map(main)
            if speaker.bonded_to is None:
                satellites = "".join(
                    self._member_xml(s, "Satellite") for s in speaker.bonded_members
                )
        if speaker.bonded_to is not None:
            attributes["Invisible"] = "1"
        text = " ".join(f"{k}={quoteattr(v)}" for k, v in attributes.items())
        if satellites:
            return f"<{tag} {text}>{satellites}</{tag}>"
        return f"<{tag} {text}/>"
