"""Dependencies shared by controllers: the database, the clock, the address cipher, the actor."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from capacity.audit import Actor
from capacity.clock import Clock
from capacity.crypto import AddressCipher
from capacity.db import Database
from capacity.settings import Settings


def provide_db(state: State) -> Database:
    return state.db


def provide_clock(state: State) -> Clock:
    return state.clock


def provide_cipher(state: State) -> AddressCipher:
    return state.cipher


def provide_settings(state: State) -> Settings:
    return state.settings


def provide_actor(request: Request[Any, Any, Any]) -> Actor:
    return request.user


DEPENDENCIES = {
    "db": Provide(provide_db, sync_to_thread=False),
    "clock": Provide(provide_clock, sync_to_thread=False),
    "cipher": Provide(provide_cipher, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "actor": Provide(provide_actor, sync_to_thread=False),
}
