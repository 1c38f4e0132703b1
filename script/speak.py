"""Main job (for now): a real Home Assistant speaks a sentence through Alicia TTS into a WAV file.

Starts ``hass`` on loopback with a throwaway config, adds the integration through the real
config-flow API with the packaged test voice, asks HA's tts for speech (``/api/tts_get_url``),
downloads the audio from HA's HTTP server and writes it to the output file.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
import struct
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ha_instance import REPO, OneOf, home_assistant

VOICE = "en_US-joe-medium"
ENGINE = "tts.alicia_tts_joe_en_us_medium"


async def speak(message: str) -> tuple[bytes, float]:
    """Home Assistant up, Alicia added, ``message`` spoken: the WAV and the time it took."""
    started = time.monotonic()
    async with home_assistant(REPO / "out" / "ha-config") as ha:
        print(f"Home Assistant is up at {ha.url} ({time.monotonic() - started:.1f} s)")
        entry = await ha.api.add_integration(
            "alicia_tts", {"language": OneOf("en-US", "en_US"), "voice": VOICE}
        )
        print(f"Config entry created: {entry['title']}")
        spoken = time.monotonic()
        result = await ha.api.rest(
            "POST",
            "/api/tts_get_url",
            {"engine_id": ENGINE, "message": message, "options": {"preferred_format": "wav"}},
        )
        audio = await ha.api.download(result["url"])
        return audio, time.monotonic() - spoken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "message",
        nargs="?",
        default=(
            "Hello! This is Alicia, speaking from inside Home Assistant. No cloud was involved."
        ),
    )
    parser.add_argument("--out", type=Path, default=REPO / "out" / "alicia.wav")
    args = parser.parse_args()

    audio, elapsed = asyncio.run(speak(args.message))
    if audio[:4] != b"RIFF":
        print("Home Assistant did not return WAV audio", file=sys.stderr)
        return 1
    rate = struct.unpack_from("<I", audio, 24)[0]
    duration = (len(audio) - 44) / (2 * rate)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(audio)
    print(f"Wrote {args.out} ({duration:.2f} s of speech at {rate} Hz, fetched in {elapsed:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
