"""The base of the pure cores' errors. Pure: imports nothing from Home Assistant."""


class TranslatedError(Exception):
    """An error whose ``translation_key`` and placeholders name the user-facing text."""

    translation_key = "engine_error"

    def __init__(self, message: str, **placeholders: str) -> None:
        """Keep the placeholders the translated message needs."""
        super().__init__(message)
        self.placeholders: dict[str, str] = placeholders
