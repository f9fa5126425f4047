"""LevelWatch: follows `general.logLevel` in the config file, the one setting that is live.

A change (through /api/admin/settings or by hand) reaches the supervisor's own logging
within CHECK_EVERY_S, and every child it starts from then on (their settings JSON carries
it); the supervisor also passes it on to the running shards, and the catalog shard to every
gateway worker. The file is read again only when its inode, size or mtime changed. A file
that a start would refuse is not followed: it is logged once, and the level stays.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from gortms import configfile
from gortms.config import Settings
from gortms.errors import ConfigFileUnavailable
from gortms.logs import set_level

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.5


class LevelWatch:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = settings.config_file
        self._seen = self._signature()
        self._checked_at = 0.0

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_ino, info.st_size, info.st_mtime_ns

    def check(self, now: float, at_once: bool = False) -> Settings | None:
        """The settings with the file's new level, applied to this process, when the file
        changed it since the last look; else None. `at_once`: whatever the time since then
        (a child is about to start)."""
        if not self.path or (not at_once and now - self._checked_at < CHECK_EVERY_S):
            return None
        self._checked_at = now
        signature = self._signature()
        if signature == self._seen:
            return None
        self._seen = signature
        try:
            state = configfile.read(self.path, self.settings)
        except (ConfigFileUnavailable, OSError) as exc:  # OSError: reading cluster.json
            log.warning("%s; general.logLevel stays %s", exc, self.settings.general.log_level)
            return None
        if state.settings is None:
            log.warning("config file %s changed, but a start would refuse it (%s); "
                        "general.logLevel stays %s", self.path, "; ".join(state.problems),
                        self.settings.general.log_level)
            return None
        level = state.settings.general.log_level  # the environment's if it sets one
        if level == self.settings.general.log_level:
            return None
        self.settings = replace(self.settings,
                                general=replace(self.settings.general, log_level=level))
        set_level(level)
        return self.settings
