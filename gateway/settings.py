"""The settings API: `GET|PUT /api/admin/settings` and `POST /api/admin/settings/reset` read
and change the config file the broker was started with (gortms/configfile.py) and say which
changes wait for a restart.

`general.logLevel` is live: a change is applied in this worker, sent to every shard
(`LogLevelSet`), and the catalog shard announces it to every gateway worker (a catalog event
of kind "log_level"); the supervisor sees it in the file and starts children with it.
Everything else applies at the next start of the broker.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import Response

from gortms import configfile
from gortms.config import Settings
from gortms.configfile import FileState
from gortms.errors import ConfigError, GortmsError, InvalidConfig, NoConfigFile
from gortms.logs import set_level
from gortms.partition import CATALOG_SHARD
from gortms.protocol import CatalogEvent, LogLevelSet
from gateway.context import Gateway
from gateway.params import read_object
from gateway.responses import json_response

LOG_LEVEL_EVENT = "log_level"


class SettingsApi:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.path = gw.settings.config_file or None
        self.level = gw.settings.general.log_level  # as it runs now
        # The file read after a reconnect: held, so the loop's weak reference is not the last.
        self._following: asyncio.Future[None] | None = None

    @property
    def running(self) -> Settings:
        """The settings this broker runs with: as started, but for the live keys."""
        settings = self.gw.settings
        return replace(settings, general=replace(settings.general, log_level=self.level))

    # --- routes -------------------------------------------------------------------------------

    async def get(self, request: Request) -> Response:
        if self.path is None:
            return json_response(self._reply(None))
        state = await _in_thread(configfile.read, self.path, self.running)
        return json_response(self._reply(state))

    async def put(self, request: Request) -> Response:
        path = self._file()
        change = await read_object(request, self.gw.max_body)
        state = await _in_thread(configfile.change, path, change, self.running)
        return json_response(self._reply(state, *await self._apply(state)))

    async def reset(self, request: Request) -> Response:
        path = self._file()
        state = await _in_thread(configfile.reset, path, self.running)
        return json_response(self._reply(state, *await self._apply(state)))

    def _file(self) -> str:
        if self.path is None:
            raise NoConfigFile(
                "the broker was started without a config file (embedded defaults and GORTMS_* "
                "variables), so there is none to change; start it with `gortms --config "
                "PATH` (`gortms --generate-config --config PATH` writes one)")
        return self.path

    # --- live keys ----------------------------------------------------------------------------

    async def _apply(self, state: FileState) -> tuple[list[str], list[str]]:
        """Apply what changed of the live keys; (keys applied, shards that did not take it)."""
        assert state.settings is not None
        level = state.settings.general.log_level  # the environment's if it sets one
        if level == self.level:
            return [], []
        self.level = level
        set_level(level)
        request = LogLevelSet(level=level)
        missed = await asyncio.gather(*(self._tell(shard, request)
                                        for shard in range(self.gw.shards.count)))
        return ["general.logLevel"], [warning for warning in missed if warning]

    async def _tell(self, shard: int, request: LogLevelSet) -> str:
        try:
            await self.gw.shards.call(shard, request)
        except GortmsError as exc:
            return (f"shard {shard} did not take general.logLevel ({exc.message}); the "
                    "supervisor passes it on when it sees the file, and starts the shard "
                    "with it")
        return ""

    def on_event(self, event: CatalogEvent) -> None:
        """The catalog shard passes a new level on to every gateway worker."""
        if event.kind == LOG_LEVEL_EVENT and event.level:
            self.level = event.level
            set_level(event.level)

    def on_reconnect(self, shard: int) -> None:
        """The catalog shard's events may have been missed (a level change among them): the
        config file says what the level is now."""
        if shard == CATALOG_SHARD and self.path is not None:
            self._following = asyncio.ensure_future(self.follow_file())

    async def follow_file(self) -> None:
        assert self.path is not None
        try:
            state = await _in_thread(configfile.read, self.path, self.running)
        except GortmsError:
            return  # unreadable or invalid now: keep the level it runs with
        level = state.settings.general.log_level if state.settings is not None else None
        if level is not None and level != self.level:
            self.level = level
            set_level(level)

    # --- replies ------------------------------------------------------------------------------

    def _reply(self, state: FileState | None, applied: list[str] | None = None,
               warnings: list[str] | None = None) -> dict[str, Any]:
        running = self.running
        pending = []
        if state is not None and state.settings is not None:
            pending = configfile.restart_required(state.settings, running)
        body: dict[str, Any] = {
            "file": self.path,
            "settings": configfile.as_tree(state.values) if state is not None else None,
            "effective": configfile.settings_tree(running),
            "environment": list(running.from_environment),
            "problems": state.problems if state is not None else [],
            "restartRequired": pending,
            "restartNeeded": bool(pending),
        }
        if applied is not None:
            body["applied"] = applied
            body["warnings"] = warnings or []
        return body


async def _in_thread(function: Callable[..., FileState], *args: Any) -> FileState:
    """File work (a lock, an fsync) off the event loop; a bad setting is a 400 naming it."""
    try:
        return await asyncio.to_thread(function, *args)
    except ConfigError as exc:
        raise InvalidConfig("; ".join(exc.problems)) from None
