"""A loopback Sonos speaker test double for soco 0.31 and sonos-websocket 0.2.

The command line: run ``python -m tests.sonos_double --speakers 2 --preset Kitchen=radio`` from
the repository root to serve fake speakers until Ctrl-C; ``--preset ROOM=STATE`` with one of
``PRESETS``; ``--event-delay``, ``--start-delay`` and ``--no-websocket`` as in `speaker`.
"""

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence

from .const import DEFAULT_EVENT_DELAY, DEFAULT_HOUSEHOLD_ID, PRESETS, STATUS_PATH
from .household import FakeHousehold, parse_presets
from .records import PlaybackRecord


def _describe(record: PlaybackRecord) -> str:
    if record.error:
        return f"[{record.speaker}] {record.via} {record.url}: ERROR {record.error}"
    return (
        f"[{record.speaker}] {record.via} {record.url}: {record.format} "
        f"{record.sample_rate} Hz x{record.channels}, {record.duration_s:.2f} s, "
        f"peak {record.peak:.2f}, leading silence {record.leading_silence_ms:.0f} ms, "
        f"first byte {record.first_byte_s or 0:.3f} s"
    )


async def serve(
    household: FakeHousehold,
    ready: Callable[[FakeHousehold], Awaitable[None] | None] | None = None,
) -> None:
    """Start ``household`` and serve until cancelled."""
    async with household:
        if ready is not None:
            result = ready(household)
            if result is not None:
                await result
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.sonos_double --speakers 2``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--speakers", type=int, default=2, help="how many (default 2)")
    parser.add_argument("--first-ip", type=int, default=2, help="first address 127.0.0.N")
    parser.add_argument("--names", help="comma-separated room names")
    parser.add_argument("--household-id", default=DEFAULT_HOUSEHOLD_ID)
    parser.add_argument("--model", default="Sonos One")
    parser.add_argument("--no-audio-clip", action="store_true", help="answer globalError")
    parser.add_argument("--lenient", action="store_true", help="no 714 for unknown extensions")
    parser.add_argument(
        "--playback-speed", type=float, default=1.0, help="1 = real time, 0 = instant"
    )
    parser.add_argument(
        "--event-delay",
        type=float,
        default=DEFAULT_EVENT_DELAY,
        help=f"seconds until events and group changes show (default {DEFAULT_EVENT_DELAY:g})",
    )
    parser.add_argument(
        "--start-delay", type=float, default=0.0, help="seconds from fetch to playing (default 0)"
    )
    parser.add_argument(
        "--no-websocket", action="store_true", help="keep the audio clip port 1443 closed"
    )
    parser.add_argument(
        "--preset",
        action="append",
        default=[],
        metavar="ROOM=STATE",
        help=f"what a speaker plays at start ({', '.join(PRESETS)}); repeatable",
    )
    options = parser.parse_args(argv)
    household = FakeHousehold.create(
        options.speakers,
        first_ip=options.first_ip,
        names=options.names.split(",") if options.names else None,
        household_id=options.household_id,
        model_name=options.model,
        supports_audio_clip=not options.no_audio_clip,
        strict_extension_check=not options.lenient,
        playback_speed=options.playback_speed,
        event_delay=options.event_delay,
        start_delay=options.start_delay,
        websocket=not options.no_websocket,
    )
    household.add_favorite("Loopback FM", "x-sonosapi-stream:s17077?sid=254&flags=8224&sn=0")
    try:
        parse_presets(options.preset, household)
    except ValueError as err:
        parser.error(str(err))

    def ready(started: FakeHousehold) -> None:
        print(f"Fake Sonos household {started.household_id}:", flush=True)
        for speaker in started.speakers:
            speaker.on_played = lambda record: print(_describe(record), flush=True)
            print(
                f"  {speaker.name!r:16} {speaker.base_url}  {speaker.uid}  "
                f"{speaker.websocket_url() if speaker.websocket_enabled else ''}",
                flush=True,
            )
        print(f"State and fetches as JSON: {started.speakers[0].base_url}{STATUS_PATH}", flush=True)
        print("Serving until Ctrl-C.", flush=True)

    try:
        asyncio.run(serve(household, ready))
    except KeyboardInterrupt:
        print("Stopped.")
    return 0
