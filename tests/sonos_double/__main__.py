"""``python -m tests.sonos_double``: serve fake speakers until Ctrl-C (see `cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
