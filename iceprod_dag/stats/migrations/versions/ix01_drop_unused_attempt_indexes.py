"""drop the attempts indexes no query uses (site+state, failure+ended): every report inserts into each

Revision ID: ix01
Revises: acc1
Create Date: 2026-11-25 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "ix01"
down_revision: str | None = "acc1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_attempts_site_state", table_name="attempts")
    op.drop_index("ix_attempts_failure_ended", table_name="attempts")


def downgrade() -> None:
    op.create_index("ix_attempts_failure_ended", "attempts", ["failure", "ended_at"], unique=False)
    op.create_index("ix_attempts_site_state", "attempts", ["site", "state"], unique=False)
