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


class EngineError(TranslatedError):
    """Base of the engine's typed errors (and of the caller's mistakes)."""

    translation_key = "engine_error"


class InvalidRequestError(EngineError):
    """The caller asked for something impossible: nothing was synthesized or played."""

    caller_error = True


class InvalidOptionError(InvalidRequestError):
    """An option has a wrong type or is out of its range."""

    translation_key = "invalid_option"


class UnknownOptionError(InvalidRequestError):
    """A call gave options that are not in the vocabulary (docs/options.md)."""

    translation_key = "unknown_option"


class InvalidPlaybackOptionError(InvalidRequestError):
    """A playback option (or the ``engine`` choice) has a wrong type or value."""

    translation_key = "invalid_playback_option"


class InvalidChimeError(InvalidRequestError):
    """``chime``/``chime_after`` is neither a boolean nor a media id, URL or file."""

    translation_key = "invalid_chime"


class CauseError(TranslatedError):
    """An error whose ``key`` names its cause in a form or a repair issue.

    Downloads, espeak-ng fetches and catalogues fail with these; the message is among the
    placeholders, as ``error``.
    """

    key = "failed"

    def __init__(self, message: str, **placeholders: str) -> None:
        """Keep the details the translated messages show, the message itself included."""
        super().__init__(message, **{"error": message, **placeholders})
