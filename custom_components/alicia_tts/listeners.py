"""Callbacks an object calls when its state changes, and scheduled calls to cancel. Pure."""

from collections.abc import Callable

type Callback = Callable[[], None]


class Listeners:
    """The callbacks to call when something changes (the entities that show it follow it)."""

    def __init__(self) -> None:
        """None yet."""
        self._callbacks: list[Callback] = []

    def add(self, update: Callback) -> Callback:
        """Call ``update`` at each change; returns the function that removes it again."""
        self._callbacks.append(update)
        return lambda: self._callbacks.remove(update)

    def notify(self) -> None:
        """Call every callback (one that removes itself or another is safe)."""
        for update in list(self._callbacks):
            update()


def cancel(unsubscribe: Callback | None) -> Callback | None:
    """Cancel a scheduled call, if there is one (``None``: nothing scheduled).

    Returns None, to be stored in its place: ``self._retry = cancel(self._retry)``.
    """
    if unsubscribe is not None:
        unsubscribe()
    return None
