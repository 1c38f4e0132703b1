"""The one base of the errors users see. Pure: imports nothing from Home Assistant.

Every error of the cores that reaches a user (engine, options, chimes, Sonos playback) is a
:class:`TranslatedError`: its ``translation_key`` and placeholders name the translated text, and
``caller_error`` tells the caller's mistakes (shown as validation errors, never sent to another
engine) from failures. ``ha_errors`` turns them into Home Assistant's errors.
"""

from typing import ClassVar


class TranslatedError(Exception):
    """An error whose ``translation_key`` and placeholders name the user-facing text."""

    translation_key = "engine_error"
    caller_error: ClassVar[bool] = False

    def __init__(self, message: str, **placeholders: str) -> None:
        """Keep the placeholders the translated message needs."""
        super().__init__(message)
        self.placeholders: dict[str, str] = placeholders
