"""Ineligible screenings take codes from a series of their own (`PS-PHL-S0001`), so
that enrolled participants' codes run without gaps: one counter per site.

Screenings already stored keep their codes (a code is never reissued); the series
starts at 1 at every site.

Revision ID: af99fb9b0e4d
Revises: 7a2d4e6f8b10
Create Date: 2026-12-07 05:45:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "af99fb9b0e4d"
down_revision: str | None = "7a2d4e6f8b10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "site_screening_numbers",
        sa.Column(
            "site_id",
            sa.Integer(),
            sa.ForeignKey("sites.id", name="fk_site_screening_numbers_site_id_sites"),
            nullable=False,
        ),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", name="pk_site_screening_numbers"),
    )


def downgrade() -> None:
    op.drop_table("site_screening_numbers")
