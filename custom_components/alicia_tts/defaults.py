"""Entry defaults for the engine options (options flow, "Voice defaults").

An entry may store defaults for ``speed``, ``noise_scale``, ``noise_w_scale``, ``gain``,
``sentence_silence`` and ``leading_silence`` in its options; a key the user left empty is not
stored and keeps the built-in default. Precedence, lowest first: a built-in default of the path
(e.g. the speakers' leading silence), the entry's default, the call's own option.
"""

from collections.abc import Mapping
from typing import Any, Final

from .engine import OPTION_RANGES

ENGINE_DEFAULT_KEYS: Final[tuple[str, ...]] = tuple(OPTION_RANGES)


def engine_defaults(entry_options: Mapping[str, Any]) -> dict[str, float]:
    """The engine defaults an entry's options set."""
    return {
        key: float(entry_options[key])
        for key in ENGINE_DEFAULT_KEYS
        if entry_options.get(key) is not None
    }


def with_engine_defaults(
    entry_options: Mapping[str, Any],
    options: Mapping[str, Any],
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``options`` completed by the entry's defaults, then by ``base``."""
    return {**(base or {}), **engine_defaults(entry_options), **options}
