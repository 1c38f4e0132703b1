"""RenderingControl and GroupRenderingControl: volume, mute, EQ, group volume."""

import math

from .didl import _bool_arg, _int_arg
from .playback import SpeakerPlayback
from .records import UPnPError


class RenderingMixin(SpeakerPlayback):
    """RenderingControl and GroupRenderingControl actions."""

    # ---------------------------------------------------------------- rendering actions

    def _set_volume(self, args: dict[str, str]) -> dict[str, str]:
        self.volume = max(0, min(100, _int_arg(args, "DesiredVolume")))
        self._bond_follows()
        return {}

    def _set_relative_volume(self, args: dict[str, str]) -> dict[str, str]:
        self.volume = max(0, min(100, self.volume + _int_arg(args, "Adjustment")))
        self._bond_follows()
        return {"NewVolume": str(self.volume)}

    def _set_mute(self, args: dict[str, str]) -> dict[str, str]:
        self.mute = _bool_arg(args, "DesiredMute")
        self._bond_follows()
        return {}

    def _bond_follows(self) -> None:
        """A bonded set shares its main speaker's volume and mute."""
        for member in self.bonded_members:
            member.volume, member.mute = self.volume, self.mute

    def _set_eq(self, which: str, value: str) -> dict[str, str]:
        try:
            level = int(value)
        except ValueError:
            raise UPnPError(402, f"{which} must be an integer") from None
        setattr(self, which, max(-10, min(10, level)))
        return {}

    def _set_loudness(self, args: dict[str, str]) -> dict[str, str]:
        self.loudness = _bool_arg(args, "DesiredLoudness")
        return {}

    def _set_output_fixed(self, _args: dict[str, str]) -> dict[str, str]:
        raise UPnPError(401, "fixed output is not supported by this model")

    def _ramp_to_volume(self, args: dict[str, str]) -> dict[str, str]:
        target = max(0, min(100, _int_arg(args, "DesiredVolume")))
        rate = {"ALARM_RAMP_TYPE": 2.5, "AUTOPLAY_RAMP_TYPE": 50.0}.get(args["RampType"], 1.25)
        seconds = abs(target - self.volume) / rate
        self.volume = target  # the double jumps to the end of the ramp at once
        return {"RampTime": str(math.ceil(seconds))}

    def _group_volume(self) -> int:
        members = self.group_members
        return round(sum(s.volume for s in members) / len(members))

    def _set_group_volume(self, desired: int) -> dict[str, str]:
        delta = max(0, min(100, desired)) - self._group_volume()
        for speaker in self.group_members:
            speaker.volume = max(0, min(100, speaker.volume + delta))
        return {"NewVolume": str(self._group_volume())}

    def _set_group_mute(self, args: dict[str, str]) -> dict[str, str]:
        mute = _bool_arg(args, "DesiredMute")
        for speaker in self.group_members:
            speaker.mute = mute
        return {}

    def _get_eq(self, args: dict[str, str]) -> dict[str, str]:
        if args["EQType"] not in self.eq:
            raise UPnPError(402, f"EQType {args['EQType']} is not supported by this model")
        return {"CurrentValue": str(self.eq[args["EQType"]])}

    def _set_eq_type(self, args: dict[str, str]) -> dict[str, str]:
        if args["EQType"] not in self.eq:
            raise UPnPError(402, f"EQType {args['EQType']} is not supported by this model")
        self.eq[args["EQType"]] = _int_arg(args, "DesiredValue")
        return {}
