"""Two readers asking for work at the same moment on PostgreSQL: the first reader's open
transaction must not hide the slots it is not taking (a next-task that locked several candidate
slots until commit answered "no task" to a concurrent reader while slots were open)."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotation import queue
from annotation.db import make_engine
from annotation.models import User
from tests.annotation.conftest import make_client
from tests.annotation.world import build_world


def test_a_reader_mid_claim_leaves_the_other_open_slots_to_a_concurrent_reader(fresh_postgres_url: str,
                                                                             store_root: Path) -> None:
    with make_client(fresh_postgres_url) as client:
        build_world(client, fresh_postgres_url, store_root, readers=2, verification=0, n_items=2)  # 4 slots
    engine = make_engine(fresh_postgres_url)
    try:
        with Session(engine) as first, Session(engine) as second:
            junior = first.scalar(select(User).where(User.username == "junior"))
            senior = second.scalar(select(User).where(User.username == "senior"))
            taken = queue.next_task(first, junior, None, lease_minutes=60)  # its transaction stays open
            assert taken is not None
            other = queue.next_task(second, senior, None, lease_minutes=60)
            assert other is not None, "the concurrent reader was told there is no task while slots are open"
            assert other.id != taken.id
            first.commit()
            second.commit()
    finally:
        engine.dispose()
