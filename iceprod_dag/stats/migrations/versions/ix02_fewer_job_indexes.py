"""jobs: drop the indexes on task, site, host and state alone (the job listing scans a bounded window for
those filters) and make the failure index partial: every stats report rewrote all eleven

Revision ID: ix02
Revises: ix01
Create Date: 2026-11-25 04:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ix02"
down_revision: str | None = "ix01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DROPPED = {
    "ix_jobs_dataset_task_updated": ["dataset_pk", "task", "updated_at", "id"],
    "ix_jobs_task_updated": ["task", "updated_at", "id"],
    "ix_jobs_state_updated": ["state", "updated_at", "id"],
    "ix_jobs_site_state_updated": ["site", "state", "updated_at"],
    "ix_jobs_site_updated": ["site", "updated_at"],
    "ix_jobs_host_updated": ["host", "updated_at"],
}
_FAILED = sa.text("last_failure IS NOT NULL")


def upgrade() -> None:
    for name in _DROPPED:
        op.drop_index(name, table_name="jobs")
    op.drop_index("ix_jobs_failure_updated", table_name="jobs")
    op.create_index(
        "ix_jobs_failure_updated",
        "jobs",
        ["last_failure", "updated_at", "id"],
        sqlite_where=_FAILED,
        postgresql_where=_FAILED,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_failure_updated", table_name="jobs")
    op.create_index("ix_jobs_failure_updated", "jobs", ["last_failure", "updated_at"])
    for name, columns in _DROPPED.items():
        op.create_index(name, "jobs", columns)
