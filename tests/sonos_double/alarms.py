"""AlarmClock (alarms live in the household) and the coordinator's sleep timer."""

import asyncio
import time

from .const import PLAYING, TRANSITIONING
from .didl import format_hms, parse_hms
from .playback import SpeakerPlayback
from .records import UPnPError


class AlarmsMixin(SpeakerPlayback):
    """AlarmClock actions and the sleep timer (AVTransport's sleep timer actions)."""

    def _update_alarm(self, args: dict[str, str]) -> dict[str, str]:
        self._household().save_alarm(args["ID"], args)
        return {}

    def _destroy_alarm(self, args: dict[str, str]) -> dict[str, str]:
        self._household().destroy_alarm(args["ID"])
        return {}

    def sleep_timer_remaining(self) -> float | None:
        """Seconds until the sleep timer pauses the group, or None when none is set."""
        ends = self.coordinator.sleep_timer_ends
        return None if ends is None else max(0.0, ends - time.monotonic())

    def _get_sleep_timer(self, _args: dict[str, str]) -> dict[str, str]:
        remaining = self.sleep_timer_remaining()
        return {
            "RemainingSleepTimerDuration": "" if remaining is None else format_hms(remaining),
            "CurrentSleepTimerGeneration": str(self.coordinator.sleep_timer_generation),
        }

    def _configure_sleep_timer(self, args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        text = args["NewSleepTimerDuration"].strip()
        if text:
            try:
                seconds = parse_hms(text)
            except ValueError:
                raise UPnPError(402, f"bad sleep timer duration {text!r}") from None
            if seconds >= 86400:
                raise UPnPError(402, "a sleep timer is shorter than a day")
            self.sleep_timer_ends = time.monotonic() + seconds
        else:
            self.sleep_timer_ends = None
        self._cancel_sleep_timer()
        if text:
            # A timer handle, not a task: a pending sleep timer does not keep the speaker busy.
            self._sleep_handle = asyncio.get_running_loop().call_later(seconds, self._sleep_now)
        self.sleep_timer_generation += 1
        return {}

    def _cancel_sleep_timer(self) -> None:
        if self._sleep_handle is not None:
            self._sleep_handle.cancel()
            self._sleep_handle = None

    def _sleep_now(self) -> None:
        """The sleep timer ran out: pause (as a real speaker fades out and pauses)."""
        self._sleep_handle = None
        self.sleep_timer_ends = None
        self.sleep_timer_generation += 1
        if self.transport_state in (PLAYING, TRANSITIONING):
            self._pause({})
        else:
            self._household().changed()
