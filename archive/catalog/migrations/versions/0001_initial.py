"""The initial catalog schema: every table as it was when migrations began.

Revision ID: 0001
Revises:
Create Date: 2026-12-03

Generated once by autogenerate from the full metadata (evidock/schema.py), then frozen:
plain DDL, no model imports. Integers that are not primary keys are BIGINT (64-bit on
PostgreSQL; file sizes, nanosecond mtimes). A catalog made before migrations existed
(create_all) has exactly these tables and is stamped at this revision when adopted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes
from integrity.errors import Refused

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: Tables that are append-only (refusing triggers); also used to adopt an old catalog.
GUARDED = (
    "auditevent",
    "blob",
    "casefile",
    "fixitycheck",
    "hold",
    "treehead",
    "uploadevent",
    "caseattachment",
    "caseevent",
    "casestage",
    "holdrelease",
    "recording",
    "caselink",
    "derivative",
    "exportrequest",
    "recordingmark",
    "rendition",
    "retentionaction",
    "tombstone",
    "wipe",
    "export",
    "exportdecision",
    "segment",
)


def upgrade() -> None:
    _vault()
    _audit()
    _replica()
    _records()
    _retention()
    refuse_changes(*GUARDED)


def _vault() -> None:
    # The vault: cameras, officers, offloads, blobs, recordings, renditions.
    op.create_table(
        "device",
        sa.Column("serial", sa.String(), nullable=False),
        sa.Column("camera_model", sa.String(), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("serial"),
    )
    op.create_table(
        "officer",
        sa.Column("police_number", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("unit", sa.String(), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("police_number"),
    )
    op.create_table(
        "docksession",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("device_serial", sa.String(), nullable=False),
        sa.Column("officer_id", sa.String(), nullable=True),
        sa.Column("camera_model", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("bay", sa.String(), nullable=True),
        sa.Column("wipe_requested", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("error_code", sa.String(), nullable=True),
        sa.Column("clock_drift_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_serial"],
            ["device.serial"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_docksession_device_serial"), "docksession", ["device_serial"], unique=False
    )
    op.create_table(
        "blob",
        sa.Column("blake3", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("blake3"),
    )
    op.create_table(
        "recording",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("device_serial", sa.String(), nullable=False),
        sa.Column("officer_id", sa.String(), nullable=True),
        sa.Column("original_path", sa.LargeBinary(), nullable=False),
        sa.Column("original_display", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("blake3", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("camera_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["blake3"],
            ["blob.blake3"],
        ),
        sa.ForeignKeyConstraint(
            ["device_serial"],
            ["device.serial"],
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["docksession.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_serial", "original_path", "blake3", name="uq_recording_origin"),
    )
    op.create_index(op.f("ix_recording_blake3"), "recording", ["blake3"], unique=False)
    op.create_index(
        op.f("ix_recording_device_serial"), "recording", ["device_serial"], unique=False
    )
    op.create_index(op.f("ix_recording_officer_id"), "recording", ["officer_id"], unique=False)
    op.create_index(op.f("ix_recording_session_id"), "recording", ["session_id"], unique=False)
    op.create_table(
        "sessionfile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("relpath", sa.LargeBinary(), nullable=False),
        sa.Column("display", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("blake3", sa.String(), nullable=True),
        sa.Column("sha256", sa.String(), nullable=True),
        sa.Column("recording_id", sa.String(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["docksession.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sessionfile_session", "sessionfile", ["session_id"], unique=False)
    op.create_table(
        "wipe",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("relpath", sa.LargeBinary(), nullable=False),
        sa.Column("blake3", sa.String(), nullable=False),
        sa.Column("wiped_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recording.id"],
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["docksession.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_wipe_recording_id"), "wipe", ["recording_id"], unique=False)
    op.create_table(
        "rendition",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=True),
        sa.Column("container", sa.String(), nullable=True),
        sa.Column("tool", sa.String(), nullable=True),
        sa.Column("argv", sa.Text(), nullable=False),
        sa.Column("source_blake3", sa.String(), nullable=False),
        sa.Column("merkle_root", sa.String(), nullable=True),
        sa.Column("manifest_blake3", sa.String(), nullable=True),
        sa.Column("key_id", sa.String(), nullable=True),
        sa.Column("media", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["manifest_blake3"],
            ["blob.blake3"],
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recording.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_rendition_recording_id"), "rendition", ["recording_id"], unique=False)
    op.create_table(
        "segment",
        sa.Column("rendition_id", sa.String(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("blake3", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["blake3"],
            ["blob.blake3"],
        ),
        sa.ForeignKeyConstraint(
            ["rendition_id"],
            ["rendition.id"],
        ),
        sa.PrimaryKeyConstraint("rendition_id", "index"),
    )
    op.create_index(op.f("ix_segment_blake3"), "segment", ["blake3"], unique=False)
    op.create_table(
        "derivative",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("tool", sa.String(), nullable=True),
        sa.Column("argv", sa.Text(), nullable=False),
        sa.Column("blake3", sa.String(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["blake3"],
            ["blob.blake3"],
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recording.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_derivative_recording_id"), "derivative", ["recording_id"], unique=False
    )
    op.create_table(
        "tombstone",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("blobs", sa.Text(), nullable=False),
        sa.Column("remote", sa.Text(), nullable=False),
        sa.Column("digests", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("approvers", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recording.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_tombstone_recording_id"), "tombstone", ["recording_id"], unique=False)


def _audit() -> None:
    # The audit log and fixity history.
    op.create_table(
        "auditevent",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("subjects", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(), nullable=False),
        sa.Column("leaf_hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "treehead",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("signature", sa.String(), nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "fixitycheck",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("blake3", sa.String(), nullable=True),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("digests", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_fixitycheck_blake3"), "fixitycheck", ["blake3"], unique=False)
    op.create_index(op.f("ix_fixitycheck_run_id"), "fixitycheck", ["run_id"], unique=False)


def _replica() -> None:
    # The upload queue to object storage.
    op.create_table(
        "uploaditem",
        sa.Column("blake3", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("checksum_failures", sa.BigInteger(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("last_error_detail", sa.String(), nullable=False),
        sa.Column("upload_id", sa.String(), nullable=True),
        sa.Column("part_size", sa.BigInteger(), nullable=True),
        sa.Column("parts", sa.Text(), nullable=False),
        sa.Column("remote_checksum", sa.String(), nullable=True),
        sa.Column("version_id", sa.String(), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["blake3"],
            ["blob.blake3"],
        ),
        sa.PrimaryKeyConstraint("blake3"),
    )
    op.create_index(op.f("ix_uploaditem_state"), "uploaditem", ["state"], unique=False)
    op.create_table(
        "uploadevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("blake3", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("bucket", sa.String(), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("attempt", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("remote_checksum", sa.String(), nullable=True),
        sa.Column("checksum_type", sa.String(), nullable=True),
        sa.Column("version_id", sa.String(), nullable=True),
        sa.Column("etag", sa.String(), nullable=True),
        sa.Column("upload_id", sa.String(), nullable=True),
        sa.Column("parts", sa.BigInteger(), nullable=True),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_uploadevent_blake3"), "uploadevent", ["blake3"], unique=False)


def _records() -> None:
    # Cases, marks, export approvals and exports.
    op.create_table(
        "casefile",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("number", sa.String(), nullable=False),
        sa.Column("case_type", sa.String(), nullable=False),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("sensitivity", sa.String(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_casefile_number"), "casefile", ["number"], unique=True)
    op.create_table(
        "caseevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["casefile.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_caseevent_case_id"), "caseevent", ["case_id"], unique=False)
    op.create_table(
        "casestage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["casefile.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_casestage_case_id"), "casestage", ["case_id"], unique=False)
    op.create_table(
        "caseattachment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("blake3", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["blake3"],
            ["blob.blake3"],
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["casefile.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_caseattachment_blake3"), "caseattachment", ["blake3"], unique=False)
    op.create_index(op.f("ix_caseattachment_case_id"), "caseattachment", ["case_id"], unique=False)
    op.create_table(
        "caselink",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("unlinks", sa.BigInteger(), nullable=True),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=True),
        sa.Column("end_us", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["casefile.id"],
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recording.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_caselink_case_id"), "caselink", ["case_id"], unique=False)
    op.create_index(op.f("ix_caselink_recording_id"), "caselink", ["recording_id"], unique=False)
    op.create_table(
        "recordingmark",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recording.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_recordingmark_recording_id"), "recordingmark", ["recording_id"], unique=False
    )
    op.create_table(
        "exportrequest",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=True),
        sa.Column("recording_id", sa.String(), nullable=True),
        sa.Column("start", sa.String(), nullable=True),
        sa.Column("end", sa.String(), nullable=True),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["casefile.id"],
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recording.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_exportrequest_case_id"), "exportrequest", ["case_id"], unique=False)
    op.create_index(
        op.f("ix_exportrequest_recording_id"), "exportrequest", ["recording_id"], unique=False
    )
    op.create_table(
        "exportdecision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exports", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["exportrequest.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_exportdecision_request_id"), "exportdecision", ["request_id"], unique=False
    )
    op.create_table(
        "export",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("rendition_id", sa.String(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("segments", sa.Text(), nullable=False),
        sa.Column("destination", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recording.id"],
        ),
        sa.ForeignKeyConstraint(
            ["rendition_id"],
            ["rendition.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_export_recording_id"), "export", ["recording_id"], unique=False)


def _retention() -> None:
    # Legal holds and retention steps.
    op.create_table(
        "hold",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("placed_by", sa.String(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "holdrelease",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hold_id", sa.String(), nullable=False),
        sa.Column("released_by", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["hold_id"],
            ["hold.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hold_id"),
    )
    op.create_table(
        "retentionaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("step", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recording.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_retentionaction_recording_id"), "retentionaction", ["recording_id"], unique=False
    )


def downgrade() -> None:
    # Dropping the initial schema would drop the evidence with it.
    raise Refused("revision 0001 is never downgraded: it holds the evidence tables")
