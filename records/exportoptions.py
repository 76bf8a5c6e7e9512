"""What an export request asks the package to hold beyond the approved ranges' footage.

One append-only row per request, written with it: ``exact`` (no byte outside the
approved ranges: no covering segments, only the trimmed derivative) and ``originals``
(the original camera files too), or ``redaction_id`` (only that approved redacted
derivative). A request without a row asks for none of these. The
approver sees both (``export show``) before approving; the run reads them from here.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from archive.catalog.types import APPEND_ONLY, utc_field


class ExportOption(SQLModel, table=True):
    __table_args__ = APPEND_ONLY

    request_id: str = Field(primary_key=True, foreign_key="exportrequest.id")
    exact: bool = False
    originals: bool = False
    #: An approved redaction (records/redactions.py): the package holds its redacted
    #: derivative and nothing of the original (what a public purpose may take).
    redaction_id: str | None = None
    at: datetime = utc_field()


__all__ = ["ExportOption"]
