"""Admins: feeds (operators' own systems Abri polls), with their health. Credentials go in
once and never come back out."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath

from api.auth import requires_admin
from api.feeds.schemas import FEED_EXAMPLE, FeedCreate, FeedRead, FeedUpdate, PollResult, feed_read
from api.routing import delete, get, patch, post
from capacity.audit import Actor
from capacity.clock import Clock
from capacity.crypto import AddressCipher
from capacity.db import Database
from capacity.settings import Settings
from clients.feeds import poller, service


class FeedController(Controller):
    path = "/admin/feeds"
    tags = ["admin"]
    guards = [requires_admin]

    @get("/", summary="All feeds with their health (last success, last error, circuit)")
    async def list_feeds(
        self, db: NamedDependency[Database], clock: NamedDependency[Clock]
    ) -> list[FeedRead]:
        now = clock.now()
        return [feed_read(v, now=now) for v in await service.list_feeds(db)]

    @post("/", status_code=201, summary="Register a feed (credentials are never shown again)")
    async def create_feed(
        self,
        data: Annotated[
            FeedCreate,
            Body(examples=[Example(summary="A hotel partner's inventory", value=FEED_EXAMPLE)]),
        ],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        cipher: NamedDependency[AddressCipher],
    ) -> Response[FeedRead]:
        view = await service.create_feed(db, data, actor=actor, now=clock.now(), cipher=cipher)
        return Response(
            feed_read(view, now=clock.now()),
            status_code=201,
            headers={"Location": f"/admin/feeds/{view.feed.id}"},
        )

    @get("/{feed_id:int}", summary="One feed and its health")
    async def get_feed(
        self, feed_id: FromPath[int], db: NamedDependency[Database], clock: NamedDependency[Clock]
    ) -> FeedRead:
        return feed_read(await service.get_feed(db, feed_id), now=clock.now())

    @patch("/{feed_id:int}", summary="Change a feed (URL, mapping, interval, credentials...)")
    async def update_feed(
        self,
        feed_id: FromPath[int],
        data: Annotated[FeedUpdate, Body()],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        cipher: NamedDependency[AddressCipher],
    ) -> FeedRead:
        return feed_read(
            await service.update_feed(
                db, feed_id, data, actor=actor, now=clock.now(), cipher=cipher
            ),
            now=clock.now(),
        )

    @delete("/{feed_id:int}", status_code=204, summary="Remove a feed (its reports stay)")
    async def delete_feed(
        self,
        feed_id: FromPath[int],
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
    ) -> None:
        await service.delete_feed(db, feed_id, actor=actor, now=clock.now())

    @post(
        "/{feed_id:int}/poll",
        status_code=200,
        summary="Poll now (a trial request if the circuit is open)",
    )
    async def poll_now(
        self,
        feed_id: FromPath[int],
        db: NamedDependency[Database],
        clock: NamedDependency[Clock],
        cipher: NamedDependency[AddressCipher],
        settings: NamedDependency[Settings],
    ) -> PollResult:
        await service.get_feed(db, feed_id)  # 404 if unknown
        report = await poller.poll_feed(
            db, feed_id, cipher=cipher, clock=clock, settings=settings, force=True
        )
        return PollResult(
            outcome=report.outcome,
            reason=report.reason,
            attempts=report.attempts,
            updated=report.updated,
            confirmed=report.confirmed,
            skipped_older=report.skipped_older,
            feed=feed_read(await service.get_feed(db, feed_id), now=clock.now()),
        )
