"""attempts: failure triage fields of the stats record (peak source, limits enforced, learned requests, queue
time, hold reason and code, error)

Revision ID: tr01
Revises: inb2
Create Date: 2026-12-04 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "tr01"
down_revision: str | None = "inb2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("peak_memory_mb", sa.Float()),
    ("peak_memory_source", sa.String(length=16)),
    ("memory_lent_mb", sa.Float()),
    ("walltime_limit_s", sa.Float()),
    ("next_walltime_s", sa.Float()),
    ("next_disk_mb", sa.Float()),
    ("queue_s", sa.Float()),
    ("hold_reason", sa.Text()),
    ("hold_code", sa.Integer()),
    ("error", sa.Text()),
)


def upgrade() -> None:
    for name, kind in _COLUMNS:
        op.add_column("attempts", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
