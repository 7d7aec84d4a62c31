"""The digest ledger: one row per subscription and window, and the stories each subscription received.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "digest_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription", sa.String(length=100), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(length=300), nullable=True),
        sa.Column("stories", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failed_recipients", sa.JSON(), nullable=True),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_runs")),
        sa.UniqueConstraint("subscription", "window_end", name=op.f("uq_digest_runs_subscription_window_end")),
    )
    op.create_index(
        op.f("ix_digest_runs_status_next_attempt_at"), "digest_runs", ["status", "next_attempt_at"], unique=False
    )
    op.create_table(
        "digest_stories",
        sa.Column("subscription", sa.String(length=100), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["digest_runs.id"], name=op.f("fk_digest_stories_run_id_digest_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["story_id"], ["stories.id"], name=op.f("fk_digest_stories_story_id_stories"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("subscription", "story_id", name=op.f("pk_digest_stories")),
    )
    op.create_index(op.f("ix_digest_stories_run_id"), "digest_stories", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_digest_stories_run_id"), table_name="digest_stories")
    op.drop_table("digest_stories")
    op.drop_index(op.f("ix_digest_runs_status_next_attempt_at"), table_name="digest_runs")
    op.drop_table("digest_runs")
