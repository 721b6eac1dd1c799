"""What a poll of the base paths found wrong with a model, logged once and then once a minute.

The poller looks every second (`--file_system_poll_wait_seconds`); repeating the same line each time
buries everything else in the log.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from layertap.server.filesystem import location

__all__ = ["PollProblems"]

#: How often an unchanged poll problem (no versions, an unreadable base path) is logged again.
REPEAT_SECONDS = 60.0


class PollProblems:
    """The last problem logged per model, and when; logs through `logger` (the lifecycle's)."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._said: dict[str, tuple[str, float]] = {}

    def clear(self, name: str) -> None:
        """The model's base path is fine again: its next problem is logged at once."""
        self._said.pop(name, None)

    def no_versions(self, name: str, base_path: str) -> None:
        """TF Serving's words for an empty base path, plus whether it exists."""
        place = location(base_path)
        # A remote base path that could be listed exists (version_paths raised otherwise).
        exists = place.is_dir() if isinstance(place, Path) else True
        self.say(
            name,
            f"No versions of servable {name} found under base path {base_path}. Did you forget to name "
            "your leaf directory as a number (eg. '/1/')?"
            + ("" if exists else f" The base path {base_path} does not exist."),
            level=logging.WARNING,
        )

    def say(self, name: str, message: str, level: int = logging.ERROR) -> None:
        """Log `message` about model `name` unless it was just said."""
        now = time.monotonic()
        said = self._said.get(name)
        if said is None or said[0] != message:
            self._logger.log(level, "%s", message)
        elif now - said[1] >= REPEAT_SECONDS:
            self._logger.log(level, "%s (still so; said again every %.0f s)", message, REPEAT_SECONDS)
        else:
            return
        self._said[name] = (message, now)
