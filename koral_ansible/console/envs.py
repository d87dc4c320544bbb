"""One Env per request: the state store's SQLite connection belongs to the thread that opened it,
and Starlette runs each request's work on a pool thread."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from starlette.requests import Request

from koral_ansible.operations.context import Env


@contextlib.contextmanager
def env_of(request: Request) -> Iterator[Env]:
    env = Env.open(str(request.app.state.home), quiet=True)
    try:
        yield env
    finally:
        env.store.close()
