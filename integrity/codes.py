"""Every stable code evidock raises, reports or records: the one list, with its meaning.

Codes end up in exit messages, JSON output, catalog rows and signed audit events, so a
code once shipped keeps its spelling and meaning for good. Modules use ``Code.X`` (a
``StrEnum``: it is the plain string in JSON, in the database and in comparisons).
``tests/test_codes.py`` fails on any code in the shipped source that is not here, and on a
stale docs/CODES.md; regenerate that with ``python -m integrity.codes > docs/CODES.md``.

The prefix says what kind of code it is: ``E_`` something is wrong, ``F_`` stored but
flagged, ``S_`` skipped, ``W_`` holds but needs attention, ``I_``/``R_`` all well. The
category refines ``E_``: raised (stops the step), a verifier's finding, or one item's
recorded failure.
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    ERROR = "error"
    FINDING = "finding"
    FAILURE = "failure"
    FLAG = "flag"
    SKIP = "skip"
    WARNING = "warning"
    OUTCOME = "outcome"

    @property
    def meaning(self) -> str:
        return _CATEGORY_INFO[self]


_CATEGORY_INFO: dict[Category, str] = {
    Category.ERROR: "raised as an EvidockError: the command or step stops (entry points "
                    "turn it into an exit code)",
    Category.FINDING: "reported by a verifier, which goes on and lists every problem",
    Category.FAILURE: "one item (file, rendition, salvage, deletion, job) failed; recorded "
                      "with this code, the run goes on",
    Category.FLAG: "stored bit-exact and catalogued, but marked as doubtful",
    Category.SKIP: "found on the camera but never opened or entered",
    Category.WARNING: "holds, but a person should look",
    Category.OUTCOME: "what happened, all well",
}


class Code(StrEnum):
    # raised: integrity.errors and the docks' own errors
    E_EVIDOCK = "E_EVIDOCK"
    E_CONFIG = "E_CONFIG"
    E_DIGEST_MISMATCH = "E_DIGEST_MISMATCH"
    E_SIZE_MISMATCH = "E_SIZE_MISMATCH"
    E_SIGNATURE_INVALID = "E_SIGNATURE_INVALID"
    E_KEY = "E_KEY"
    E_MANIFEST_INVALID = "E_MANIFEST_INVALID"
    E_PROOF_INVALID = "E_PROOF_INVALID"
    E_STORE_UNWRITABLE = "E_STORE_UNWRITABLE"
    E_DISK_FULL = "E_DISK_FULL"
    E_CATALOG = "E_CATALOG"
    E_SCHEMA_OUTDATED = "E_SCHEMA_OUTDATED"
    E_SOURCE_GONE = "E_SOURCE_GONE"
    E_SOURCE_INVALID = "E_SOURCE_INVALID"
    E_MEDIA = "E_MEDIA"
    E_TOOL_MISSING = "E_TOOL_MISSING"
    E_NOT_FOUND = "E_NOT_FOUND"
    E_REFUSED = "E_REFUSED"
    E_AUDIT = "E_AUDIT"
    E_FIXITY = "E_FIXITY"
    E_UPLOAD = "E_UPLOAD"
    E_UPLOAD_UNAVAILABLE = "E_UPLOAD_UNAVAILABLE"
    E_UPLOAD_CHECKSUM = "E_UPLOAD_CHECKSUM"
    E_UPLOAD_UNVERIFIABLE = "E_UPLOAD_UNVERIFIABLE"
    E_REPAIR_UNAVAILABLE = "E_REPAIR_UNAVAILABLE"
    E_REPAIR_MISMATCH = "E_REPAIR_MISMATCH"
    E_REMOTE_UNPROVEN = "E_REMOTE_UNPROVEN"
    E_INVALID = "E_INVALID"
    E_CONFLICT = "E_CONFLICT"
    E_RANGE_NOT_SATISFIABLE = "E_RANGE_NOT_SATISFIABLE"
    E_UNKNOWN_USER = "E_UNKNOWN_USER"
    E_SERVICE_UNAVAILABLE = "E_SERVICE_UNAVAILABLE"
    E_TRANSFER = "E_TRANSFER"
    E_FORBIDDEN = "E_FORBIDDEN"
    E_SELF_APPROVAL = "E_SELF_APPROVAL"
    E_CENTER_DECIDES = "E_CENTER_DECIDES"
    E_NOT_APPROVED = "E_NOT_APPROVED"
    E_ITEM_HIDDEN = "E_ITEM_HIDDEN"
    E_LOGIN_FAILED = "E_LOGIN_FAILED"
    E_LOGIN_THROTTLED = "E_LOGIN_THROTTLED"
    E_CSRF = "E_CSRF"
    E_RETENTION_INVARIANT = "E_RETENTION_INVARIANT"
    E_RENDITION = "E_RENDITION"
    E_RENDITION_DISCONTINUOUS = "E_RENDITION_DISCONTINUOUS"
    E_RENDITION_EMPTY = "E_RENDITION_EMPTY"
    E_RENDITION_INCOMPLETE = "E_RENDITION_INCOMPLETE"
    E_RENDITION_TIMEOUT = "E_RENDITION_TIMEOUT"
    E_RENDITION_FFMPEG = "E_RENDITION_FFMPEG"
    E_DRIVER = "E_DRIVER"
    E_MOUNT = "E_MOUNT"
    E_DOCK_STOPPING = "E_DOCK_STOPPING"
    E_CAMERA_BUSY = "E_CAMERA_BUSY"
    E_QUEUE_UNAVAILABLE = "E_QUEUE_UNAVAILABLE"
    E_NOT_OPERATOR = "E_NOT_OPERATOR"
    E_LOG_FORK = "E_LOG_FORK"
    E_WITNESS_REFUSED = "E_WITNESS_REFUSED"
    E_CENTER_UNAVAILABLE = "E_CENTER_UNAVAILABLE"
    # verification findings: packages, stored recordings, audit log, fixity
    E_KEY_UNKNOWN = "E_KEY_UNKNOWN"
    E_MERKLE_ROOT_MISMATCH = "E_MERKLE_ROOT_MISMATCH"
    E_KEY_MISMATCH = "E_KEY_MISMATCH"
    E_PACKAGE_MISSING = "E_PACKAGE_MISSING"
    E_PACKAGE_INVALID = "E_PACKAGE_INVALID"
    E_REPORT_INVALID = "E_REPORT_INVALID"
    E_MISSING_FILE = "E_MISSING_FILE"
    E_EXTRA_FILE = "E_EXTRA_FILE"
    E_SEGMENT_UNKNOWN = "E_SEGMENT_UNKNOWN"
    E_SEGMENT_ORDER = "E_SEGMENT_ORDER"
    E_SEGMENT_GAP = "E_SEGMENT_GAP"
    E_ORIGINAL_MISMATCH = "E_ORIGINAL_MISMATCH"
    E_PACKAGE_LINK = "E_PACKAGE_LINK"
    E_PACKAGE_SPECIAL = "E_PACKAGE_SPECIAL"
    E_PACKAGE_PATH_UNSAFE = "E_PACKAGE_PATH_UNSAFE"
    E_PACKAGE_LIMIT = "E_PACKAGE_LIMIT"
    E_PACKAGE_ENCODING = "E_PACKAGE_ENCODING"
    E_PACKAGE_UNREADABLE = "E_PACKAGE_UNREADABLE"
    E_BAG_INVALID = "E_BAG_INVALID"
    E_BAG_UNLISTED = "E_BAG_UNLISTED"
    E_BAG_DIGEST_MISMATCH = "E_BAG_DIGEST_MISMATCH"
    E_BAG_OXUM = "E_BAG_OXUM"
    E_REQUEST_MISMATCH = "E_REQUEST_MISMATCH"
    E_KEY_REFUSED = "E_KEY_REFUSED"
    E_CLIP_UNSIGNED = "E_CLIP_UNSIGNED"
    E_CRYPTO_PROFILE = "E_CRYPTO_PROFILE"
    E_REDACTION_INVALID = "E_REDACTION_INVALID"
    E_REDACTION_UNSIGNED = "E_REDACTION_UNSIGNED"
    E_SELECTION_MISMATCH = "E_SELECTION_MISMATCH"
    E_DERIVATIVE_MISMATCH = "E_DERIVATIVE_MISMATCH"
    E_DERIVATIVE_UNSIGNED = "E_DERIVATIVE_UNSIGNED"
    E_INDEX_MISMATCH = "E_INDEX_MISMATCH"
    E_CATALOG_MISMATCH = "E_CATALOG_MISMATCH"
    E_AUDIT_TRUNCATED = "E_AUDIT_TRUNCATED"
    E_AUDIT_ROOT_MISMATCH = "E_AUDIT_ROOT_MISMATCH"
    E_AUDIT_GAP = "E_AUDIT_GAP"
    E_AUDIT_EVENT_CHANGED = "E_AUDIT_EVENT_CHANGED"
    E_AUDIT_CHAIN_BROKEN = "E_AUDIT_CHAIN_BROKEN"
    E_AUDIT_ORDER = "E_AUDIT_ORDER"
    E_FIXITY_MISSING = "E_FIXITY_MISSING"
    E_FIXITY_ALTERED = "E_FIXITY_ALTERED"
    E_FIXITY_UNREADABLE = "E_FIXITY_UNREADABLE"
    E_FIXITY_UNEXPECTED = "E_FIXITY_UNEXPECTED"
    E_FIXITY_TOMBSTONED_PRESENT = "E_FIXITY_TOMBSTONED_PRESENT"
    E_RECORD_INVALID = "E_RECORD_INVALID"
    E_CATALOG_UNSIGNED = "E_CATALOG_UNSIGNED"
    E_CATALOG_ROW_MISSING = "E_CATALOG_ROW_MISSING"
    E_BUNDLE_INVALID = "E_BUNDLE_INVALID"
    E_BUNDLE_INCOMPLETE = "E_BUNDLE_INCOMPLETE"
    E_TIMESTAMP_INVALID = "E_TIMESTAMP_INVALID"
    E_TIMESTAMP_IMPRINT = "E_TIMESTAMP_IMPRINT"
    E_TIMESTAMP_UNTRUSTED = "E_TIMESTAMP_UNTRUSTED"
    E_TIMESTAMP_NONCE = "E_TIMESTAMP_NONCE"
    E_TIMESTAMP_MISSING = "E_TIMESTAMP_MISSING"
    # one item failed, recorded, the run goes on
    E_SOURCE_CHANGED = "E_SOURCE_CHANGED"
    E_SOURCE_READ = "E_SOURCE_READ"
    E_RENDITION_SOURCE_INVALID = "E_RENDITION_SOURCE_INVALID"
    E_RECOVERY_UNAVAILABLE = "E_RECOVERY_UNAVAILABLE"
    E_RECOVERY_EMPTY = "E_RECOVERY_EMPTY"
    E_RECOVERY_FAILED = "E_RECOVERY_FAILED"
    E_RETENTION_UNVERIFIED = "E_RETENTION_UNVERIFIED"
    E_INTERNAL = "E_INTERNAL"
    E_TIMESTAMP_UNAVAILABLE = "E_TIMESTAMP_UNAVAILABLE"
    # ingest flags and skips
    F_EMPTY = "F_EMPTY"
    F_NAME_UNPARSED = "F_NAME_UNPARSED"
    F_SERIAL_MISMATCH = "F_SERIAL_MISMATCH"
    F_UNPLAYABLE = "F_UNPLAYABLE"
    F_FORMAT_MISMATCH = "F_FORMAT_MISMATCH"
    F_NO_STREAM = "F_NO_STREAM"
    F_TRUNCATED = "F_TRUNCATED"
    F_PROBE_TIMEOUT = "F_PROBE_TIMEOUT"
    F_DURATION_IMPLAUSIBLE = "F_DURATION_IMPLAUSIBLE"
    S_SYMLINK = "S_SYMLINK"
    S_NOT_REGULAR = "S_NOT_REGULAR"
    S_TOO_DEEP = "S_TOO_DEEP"
    S_UNREADABLE = "S_UNREADABLE"
    # warnings
    W_KEY_UNTRUSTED = "W_KEY_UNTRUSTED"
    W_REMOTE_DELETE_DEFERRED = "W_REMOTE_DELETE_DEFERRED"
    W_REMOTE_HOLD_FOREIGN = "W_REMOTE_HOLD_FOREIGN"
    W_REMOTE_HOLD_GONE = "W_REMOTE_HOLD_GONE"
    W_RECORD_UNCOMMITTED = "W_RECORD_UNCOMMITTED"
    W_TIMESTAMP_PENDING = "W_TIMESTAMP_PENDING"
    W_TIMESTAMP_UNTRUSTED = "W_TIMESTAMP_UNTRUSTED"
    # all well
    I_INGESTED = "I_INGESTED"
    I_DUPLICATE = "I_DUPLICATE"
    I_RENDITION_QUEUED = "I_RENDITION_QUEUED"
    I_JOB_QUEUED = "I_JOB_QUEUED"
    I_FIXITY_OK = "I_FIXITY_OK"
    I_FIXITY_TOMBSTONED = "I_FIXITY_TOMBSTONED"
    I_REPAIR_RESTORED = "I_REPAIR_RESTORED"
    I_REPAIR_NOT_NEEDED = "I_REPAIR_NOT_NEEDED"
    I_UPLOAD_VERIFIED = "I_UPLOAD_VERIFIED"
    I_UPLOAD_REUSED = "I_UPLOAD_REUSED"
    I_UPLOAD_WITHDRAWN = "I_UPLOAD_WITHDRAWN"
    I_REMOTE_DELETED = "I_REMOTE_DELETED"
    I_REMOTE_RETENTION_EXTENDED = "I_REMOTE_RETENTION_EXTENDED"
    I_REMOTE_LEGAL_HOLD_ON = "I_REMOTE_LEGAL_HOLD_ON"
    I_REMOTE_LEGAL_HOLD_OFF = "I_REMOTE_LEGAL_HOLD_OFF"
    I_RETENTION_DELETED = "I_RETENTION_DELETED"
    I_RETENTION_WOULD_DELETE = "I_RETENTION_WOULD_DELETE"
    I_RETENTION_CANCELLED = "I_RETENTION_CANCELLED"
    I_RETENTION_NOT_DUE = "I_RETENTION_NOT_DUE"
    I_RETENTION_AWAITING_APPROVAL = "I_RETENTION_AWAITING_APPROVAL"
    I_RETENTION_RACED = "I_RETENTION_RACED"
    I_RETENTION_AWAITING_SECOND_PERSON = "I_RETENTION_AWAITING_SECOND_PERSON"
    R_REMUX = "R_REMUX"
    R_TRANSCODE = "R_TRANSCODE"
    R_AUDIO = "R_AUDIO"
    R_AUDIO_TRANSCODE = "R_AUDIO_TRANSCODE"
    R_NONE = "R_NONE"
    R_SALVAGED = "R_SALVAGED"

    @property
    def category(self) -> Category:
        return _INFO[self][0]

    @property
    def meaning(self) -> str:
        return _INFO[self][1]


_E, _FD, _FL = Category.ERROR, Category.FINDING, Category.FAILURE
_INFO: dict[Code, tuple[Category, str]] = {
    Code.E_EVIDOCK: (_E, "an evidock error with no more specific code (e.g. an export "
                         "target that is not an empty directory)"),
    Code.E_CONFIG: (_E, "config file unreadable, not TOML, or a key fails validation (the "
                        "key is named)"),
    Code.E_DIGEST_MISMATCH: (_E, "bytes differ from their digest: the re-read copy of a "
                                 "camera file (not recorded, not wiped), a stored blob, a "
                                 "package file, an upload"),
    Code.E_SIZE_MISMATCH: (_E, "a file's size differs from the one recorded or read"),
    Code.E_SIGNATURE_INVALID: (_E, "a signature (manifest, audit tree head) does not verify"),
    Code.E_KEY: (_E, "key material missing, unreadable or of the wrong kind"),
    Code.E_MANIFEST_INVALID: (_E, "a signed document is malformed or not canonical JSON"),
    Code.E_PROOF_INVALID: (_E, "a Merkle inclusion or consistency proof is malformed or "
                               "does not hold"),
    Code.E_STORE_UNWRITABLE: (_E, "the evidence store cannot be written: the offload stops, "
                                  "nothing further is wiped"),
    Code.E_DISK_FULL: (_E, "the evidence store's disk is full: the offload stops"),
    Code.E_CATALOG: (_E, "the catalog cannot be opened or written"),
    Code.E_SCHEMA_OUTDATED: (_E, "the catalog's schema is not at this evidock's revision "
                                 "(or it has none): run `evidock admin migrate` "
                                 "(`evidock init` for a new station)"),
    Code.E_SOURCE_GONE: (_E, "the camera vanished or stopped answering mid-offload: session "
                             "interrupted, the next offload resumes"),
    Code.E_SOURCE_INVALID: (_E, "the offload source is not a readable directory"),
    Code.E_MEDIA: (_E, "ffmpeg/ffprobe timed out"),
    Code.E_TOOL_MISSING: (_E, "a required external tool (ffmpeg, ffprobe) is not installed"),
    Code.E_NOT_FOUND: (_E, "no such record (recording, case, request, ...); exit 1"),
    Code.E_REFUSED: (_E, "an action evidock never performs on evidence (edit, delete), or "
                         "access refused; audited, exit 3"),
    Code.E_AUDIT: (_E, "the audit log cannot be appended to, proven or signed as asked"),
    Code.E_FIXITY: (_E, "a fixity run cannot be carried out as asked (bad selection, "
                        "unreadable store)"),
    Code.E_UPLOAD: (_E, "an upload failed and retrying alone will not help (access denied, "
                        "no bucket, no Object Lock, unreadable local blob)"),
    Code.E_UPLOAD_UNAVAILABLE: (_E, "the object store is unreachable or overloaded: retried "
                                    "later with backoff"),
    Code.E_UPLOAD_CHECKSUM: (_E, "the object store rejected or returned a SHA-256 other "
                                 "than ours: retried a few times"),
    Code.E_UPLOAD_UNVERIFIABLE: (_E, "the object store returns no SHA-256, so the copy "
                                     "cannot be verified remotely"),
    Code.E_REPAIR_UNAVAILABLE: (_E, "a blob cannot be restored from the object store: no "
                                    "verified upload of it (in the configured bucket), "
                                    "the store no longer has that version, or retention "
                                    "removed the blob; nothing changed"),
    Code.E_REPAIR_MISMATCH: (_E, "the object downloaded to restore a blob differs from "
                                 "the catalog (size, BLAKE3 or SHA-256): nothing placed, "
                                 "the damaged blob left where it was"),
    Code.E_REMOTE_UNPROVEN: (_E, "the center read a blob back from the object store and no "
                                 "version at its key is the blob (size, BLAKE3): nothing "
                                 "written, an export's approval given back"),
    Code.E_INVALID: (_E, "a request that cannot be carried out as given (bad case number, "
                         "unknown stage, range outside the recording); nothing changed"),
    Code.E_CONFLICT: (_E, "the request contradicts the record (case exists, link removed, "
                          "hold released, request decided); nothing changed"),
    Code.E_RANGE_NOT_SATISFIABLE: (_E, "a byte range (HTTP Range) that no byte of the stored "
                                       "segment answers: HTTP 416, nothing read or audited"),
    Code.E_UNKNOWN_USER: (_E, "the OS account is not mapped to an evidock user; audited, "
                              "exit 3"),
    Code.E_SERVICE_UNAVAILABLE: (_E, "the station service (evidock serve) cannot be "
                                     "reached on its socket; nothing was done"),
    Code.E_TRANSFER: (_E, "a package download from the station service failed its checks "
                          "(broken off, an unsafe or unlisted entry, a size or SHA-256 that "
                          "differs from the service's listing): nothing was written at the "
                          "destination"),
    Code.E_FORBIDDEN: (_E, "the user lacks the permission, unit or clearance; audited, "
                           "exit 3"),
    Code.E_SELF_APPROVAL: (_E, "two-person rule: the second person must be someone else; "
                               "audited, exit 3"),
    Code.E_CENTER_DECIDES: (_E, "retention is decided at the center (`[center] retention = "
                                "\"center\"`, or a hold the center placed): approve, reject "
                                "or release it there; audited, exit 3"),
    Code.E_NOT_APPROVED: (_E, "export or deletion without a valid (approved, unexpired, "
                              "unused) approval; audited, exit 3"),
    Code.E_ITEM_HIDDEN: (_E, "an export names footage the user may not see: a recording "
                             "linked to another case of a unit or label beyond the user's "
                             "(a recording is as secret as its strictest case); audited, "
                             "exit 3"),
    Code.E_LOGIN_FAILED: (_E, "network login refused: wrong user name or password, or no "
                              "password set; audited (access.login_failed), exit 3"),
    Code.E_LOGIN_THROTTLED: (_E, "too many failed logins for the account or the client "
                                 "address in the last minute; audited, exit 3"),
    Code.E_CSRF: (_E, "a state-changing request made with a session cookie lacked the "
                      "session's CSRF token (X-CSRF-Token); audited, exit 3"),
    Code.E_RETENTION_INVARIANT: (_E, "the retention planner was about to delete before the "
                                     "legal minimum or before now (a bug): nothing deleted"),
    Code.E_RENDITION: (_E, "renditions failed after a dock offload (each failed rendition "
                           "row has its own E_RENDITION_* code)"),
    Code.E_RENDITION_DISCONTINUOUS: (_E, "ffmpeg's segments do not join up in time"),
    Code.E_RENDITION_EMPTY: (_E, "ffmpeg produced no segments"),
    Code.E_RENDITION_INCOMPLETE: (_E, "the segments cover less of the original than its "
                                      "duration (more than 0.5 s short)"),
    Code.E_RENDITION_TIMEOUT: (_E, "ffmpeg took longer than rendition.timeout_s"),
    Code.E_RENDITION_FFMPEG: (_E, "ffmpeg failed while cutting the rendition"),
    Code.E_DRIVER: (_E, "the camera's dock control protocol failed (port, frame, checksum, "
                        "refusal, timeout)"),
    Code.E_MOUNT: (_E, "a docked camera's storage could not be mounted or unmounted, or "
                       "its filesystem is not allowed"),
    Code.E_DOCK_STOPPING: (_E, "the dock daemon is stopping or the camera left the bay: "
                               "offload paused between files, session interrupted"),
    Code.E_CAMERA_BUSY: (_E, "this camera is already being offloaded (another bay, or an "
                             "ingest): refused before anything was read, nothing wiped"),
    Code.E_QUEUE_UNAVAILABLE: (_E, "the job queue cannot be used: `evidock worker` needs "
                                   "[jobs] queue = \"postgres\" and the catalog on "
                                   "PostgreSQL (on the SQLite default renditions run "
                                   "in-process), or the queue's database refused"),
    Code.E_NOT_OPERATOR: (_E, "a command that touches the station's files directly (init, "
                              "admin migrate, keys init/rotate, the daemons) run by an "
                              "account other than root or the service account; exit 3 "
                              "(not audited: such an account cannot reach the log)"),
    Code.E_LOG_FORK: (_E, "a witness saw a station's signed tree head that does not extend "
                          "the log it witnessed before (rewritten, truncated or forked): "
                          "recorded at the witness with both heads and the proof, refused, "
                          "HTTP 409"),
    Code.E_WITNESS_REFUSED: (_E, "a witness would not countersign a head: unknown station, "
                                 "a signature that does not verify, a malformed proof, or an "
                                 "older head than it already witnessed; nothing recorded as "
                                 "witnessed"),
    Code.E_CENTER_UNAVAILABLE: (_E, "the center could not be reached or answered out of "
                                    "protocol (a countersignature that does not verify); "
                                    "nothing was kept, the next push catches up"),
    Code.E_KEY_UNKNOWN: (_FD, "the signing key is not in the keyring"),
    Code.E_MERKLE_ROOT_MISMATCH: (_FD, "the segment digests do not hash to the manifest's "
                                       "Merkle root"),
    Code.E_KEY_MISMATCH: (_FD, "the package was not signed by the key given with --key"),
    Code.E_PACKAGE_MISSING: (_FD, "not a clip package, or a required file of it is missing"),
    Code.E_REPORT_INVALID: (_FD, "a signed report's signature file (report.pdf.sig.json) "
                                 "is missing, unreadable or not a station report "
                                 "signature, or the report is a link or no regular "
                                 "file"),
    Code.E_PACKAGE_INVALID: (_FD, "a package file is malformed (bad JSON, unsafe name, "
                                  "symbolic link, unusable keyring)"),
    Code.E_MISSING_FILE: (_FD, "a file the package or the catalog lists is missing"),
    Code.E_EXTRA_FILE: (_FD, "a file in the package that it does not list"),
    Code.E_SEGMENT_UNKNOWN: (_FD, "a segment is not in the signed manifest"),
    Code.E_SEGMENT_ORDER: (_FD, "segments are listed out of order"),
    Code.E_SEGMENT_GAP: (_FD, "consecutive segments are not contiguous in time"),
    Code.E_ORIGINAL_MISMATCH: (_FD, "the original named (clip.json, catalog) is not the one "
                                    "the manifest signs"),
    Code.E_PACKAGE_LINK: (_FD, "a symbolic link in a clip package, or a package directory "
                               "that is one: never followed"),
    Code.E_PACKAGE_SPECIAL: (_FD, "a FIFO, socket or device file in a clip package: never "
                                  "opened"),
    Code.E_PACKAGE_PATH_UNSAFE: (_FD, "a path a package names (manifest line, segment name) "
                                      "is absolute, has '..' or empty parts or leaves its "
                                      "place: never opened"),
    Code.E_PACKAGE_LIMIT: (_FD, "a package file, manifest line, file count or nesting depth "
                                "(directories, JSON) is over the verifier's bound: not read "
                                "further"),
    Code.E_PACKAGE_ENCODING: (_FD, "a package's manifest, tag file or JSON is not UTF-8"),
    Code.E_PACKAGE_UNREADABLE: (_FD, "a package file or directory could not be listed or "
                                     "read (permissions, I/O error, changed while verified)"),
    Code.E_BAG_INVALID: (_FD, "bagit.txt or bag-info.txt is not a BagIt 1.0 declaration, or "
                              "a payload or tag manifest is malformed"),
    Code.E_BAG_UNLISTED: (_FD, "a package file the bag's payload manifests (data/) or tag "
                               "manifests (everything else) do not cover"),
    Code.E_BAG_DIGEST_MISMATCH: (_FD, "a file's SHA-256 or SHA-512 differs from the bag's "
                                      "payload or tag manifest"),
    Code.E_BAG_OXUM: (_FD, "bag-info.txt's Payload-Oxum (bytes.files) differs from the "
                           "payload"),
    Code.E_REQUEST_MISMATCH: (_FD, "a case export's request.json says something its "
                                   "packages' signed clip.json do not, or a package's "
                                   "recording and range are not an item of the request "
                                   "its clip.json records"),
    Code.E_KEY_REFUSED: (_FD, "the --key file is a symbolic link, not a regular file or too "
                              "large: refused unread (the package's own keyring is used)"),
    Code.E_REDACTION_INVALID: (_FD, "a redacted derivative's statement (redaction.json) "
                                    "is malformed, unlabelled, or does not describe the "
                                    "redacted file it ships with"),
    Code.E_REDACTION_UNSIGNED: (_FD, "a redacted derivative without the station's "
                                     "signature on its redaction.json"),
    Code.E_CRYPTO_PROFILE: (_FD, "the package's crypto profile (bag-info.txt "
                                 "Evidock-Crypto-Profile) disagrees with the suite that "
                                 "signed it, is unknown, or its gm layer (SM3 manifests "
                                 "signed with SM2) is malformed"),
    Code.E_CLIP_UNSIGNED: (_FD, "a clip package without the station's signature on its "
                                "clip.json (data/clip.sig.json missing or unreadable): "
                                "its range, segments, request and approval are "
                                "vouched for by nobody"),
    Code.E_SELECTION_MISMATCH: (_FD, "clip.json's segments or their digests are not those "
                                     "the signed manifest has over clip.json's range"),
    Code.E_DERIVATIVE_MISMATCH: (_FD, "a package's exact-range derivative clip is not what "
                                      "its signed derivative.json says (size, digest), or "
                                      "its provenance (source segments and digests, range, "
                                      "recording) is not the signed manifest's or clip.json's"),
    Code.E_DERIVATIVE_UNSIGNED: (_FD, "a package's derivative.json has no station signature "
                                      "(data/derivative/derivative.sig.json): its provenance "
                                      "is vouched for by nobody"),
    Code.E_INDEX_MISMATCH: (_FD, "a package's index.html does not list a file the package "
                                 "holds with the digest the package has for it"),
    Code.E_CATALOG_MISMATCH: (_FD, "a catalog row differs from what the station signed "
                                   "(rendition manifest, recording or session record) "
                                   "or from its audit event; field and both values "
                                   "named"),
    Code.E_RECORD_INVALID: (_FD, "an object in the store that should be a signed record "
                                 "(recording, session) is not one: unreadable, "
                                 "malformed or not canonical"),
    Code.E_CATALOG_UNSIGNED: (_FD, "a catalog row (recording, dock session) has no "
                                   "signed record or no audit event of its ingest: "
                                   "inserted, or its record removed"),
    Code.E_CATALOG_ROW_MISSING: (_FD, "the store holds a signed record (recording, "
                                      "session) whose catalog row is gone: rows were "
                                      "lost or deleted"),
    Code.E_BUNDLE_INVALID: (_FD, "an export's audit bundle (data/audit-bundle.json) is not "
                                 "a bundle: unreadable, malformed, or an entry without its "
                                 "event, leaf hash or proof"),
    Code.E_BUNDLE_INCOMPLETE: (_FD, "an export's audit bundle does not hold exactly the "
                                    "events the station's signed index lists: one was "
                                    "removed, added or moved"),
    Code.E_TIMESTAMP_INVALID: (_FD, "an RFC 3161 timestamp response is unreadable, not "
                                    "granted, or its signature does not verify"),
    Code.E_TIMESTAMP_IMPRINT: (_FD, "a timestamp token attests another digest (or "
                                    "algorithm) than the SHA-256 of the signed bytes: "
                                    "the bytes were changed, or the token is another's"),
    Code.E_TIMESTAMP_UNTRUSTED: (_FD, "a timestamp token does not chain to a given TSA "
                                      "root, or its signer lacks the critical "
                                      "timeStamping EKU"),
    Code.E_TIMESTAMP_NONCE: (_FD, "a timestamp token carries another nonce than the "
                                  "request's: a replayed or misdirected answer"),
    Code.W_TIMESTAMP_PENDING: (Category.WARNING, "a signed manifest or tree head still "
                                                 "waits for a timestamp token (no TSA "
                                                 "answered yet; retried)"),
    Code.E_TIMESTAMP_MISSING: (_FD, "a package's timestamps.json has no entry (token or "
                                    "pending) for a signed manifest or tree head it "
                                    "carries, or an entry for nothing it carries"),
    Code.W_TIMESTAMP_UNTRUSTED: (Category.WARNING, "a timestamp token's imprint holds, "
                                                   "but no TSA root was given (--tsa-root): "
                                                   "its signer, so its time, is unchecked"),
    Code.W_RECORD_UNCOMMITTED: (Category.WARNING, "the store holds a signed recording "
                                                  "record that no catalog row and no "
                                                  "session record names: an ingest "
                                                  "killed before its commit"),
    Code.E_AUDIT_TRUNCATED: (_FD, "a tree head covers more events than the audit log holds"),
    Code.E_AUDIT_ROOT_MISMATCH: (_FD, "the audit events no longer hash to a signed head's "
                                      "root, or the head is for another tree"),
    Code.E_AUDIT_GAP: (_FD, "audit sequence numbers are missing (events deleted)"),
    Code.E_AUDIT_EVENT_CHANGED: (_FD, "an audit event's fields no longer hash to its leaf "
                                      "hash (edited)"),
    Code.E_AUDIT_CHAIN_BROKEN: (_FD, "an audit event chains to no event, or past its "
                                     "predecessor (inserted, or predecessor removed)"),
    Code.E_AUDIT_ORDER: (_FD, "an audit event chains to an event elsewhere in the log "
                              "(reordered)"),
    Code.E_FIXITY_MISSING: (_FD, "a blob the catalog names is missing from the store"),
    Code.E_FIXITY_ALTERED: (_FD, "a stored blob's size or digest differs, or it is no "
                                 "longer a regular file"),
    Code.E_FIXITY_UNREADABLE: (_FD, "a stored blob cannot be read (I/O or permission error)"),
    Code.E_FIXITY_UNEXPECTED: (_FD, "something in the store that no catalog row names"),
    Code.E_FIXITY_TOMBSTONED_PRESENT: (_FD, "a blob retention removed is still in the store"),
    Code.E_SOURCE_CHANGED: (_FL, "file changed on the camera during the copy: not "
                                 "recorded, not wiped"),
    Code.E_SOURCE_READ: (_FL, "read error on the camera: not recorded, not wiped"),
    Code.E_RENDITION_SOURCE_INVALID: (_FL, "no rendition: the original is not readable "
                                           "media or lacks the stream (kept, flagged)"),
    Code.E_RECOVERY_UNAVAILABLE: (_FL, "salvage not attempted: the file's index is lost "
                                       "(needs reference-based reconstruction)"),
    Code.E_RECOVERY_EMPTY: (_FL, "salvage found no whole video packet"),
    Code.E_RECOVERY_FAILED: (_FL, "the salvaged file is not playable media"),
    Code.E_RETENTION_UNVERIFIED: (_FL, "a due deletion stopped: a blob is missing or not "
                                       "what the catalog says"),
    Code.E_TIMESTAMP_UNAVAILABLE: (_FL, "no configured TSA gave a valid token for an "
                                        "item this run; it stays queued"),
    Code.E_INTERNAL: (_FL, "an unexpected exception (a bug) ended a scheduled job or a "
                           "dock bay"),
    Code.F_EMPTY: (Category.FLAG, "zero-byte file"),
    Code.F_NAME_UNPARSED: (Category.FLAG, "name matches no pattern of the camera model"),
    Code.F_SERIAL_MISMATCH: (Category.FLAG, "serial in the name differs from the docked "
                                            "device"),
    Code.F_UNPLAYABLE: (Category.FLAG, "ffprobe cannot read it as media"),
    Code.F_FORMAT_MISMATCH: (Category.FLAG, "content is not the format its extension "
                                            "claims"),
    Code.F_NO_STREAM: (Category.FLAG, "media file without the expected stream"),
    Code.F_TRUNCATED: (Category.FLAG, "header readable but packets missing or corrupt"),
    Code.F_PROBE_TIMEOUT: (Category.FLAG, "ffprobe or the demux pass took longer than "
                                          "ingest.probe_timeout_s: validity unknown"),
    Code.F_DURATION_IMPLAUSIBLE: (Category.FLAG, "the header's duration does not fit the "
                                                 "file's size or its streams' durations"),
    Code.S_SYMLINK: (Category.SKIP, "symbolic link: never followed"),
    Code.S_NOT_REGULAR: (Category.SKIP, "FIFO, socket or device file: never opened"),
    Code.S_TOO_DEEP: (Category.SKIP, "directory below ingest.max_depth: not entered"),
    Code.S_UNREADABLE: (Category.SKIP, "could not be listed or opened (permissions)"),
    Code.W_KEY_UNTRUSTED: (Category.WARNING, "the signature holds only against the key "
                                             "shipped in the package (no --key given)"),
    Code.W_REMOTE_DELETE_DEFERRED: (Category.WARNING, "a remote copy was not deleted yet "
                                                      "(locked, or the store unavailable or "
                                                      "not configured)"),
    Code.W_REMOTE_HOLD_FOREIGN: (Category.WARNING, "a legal hold evidock did not place is "
                                                   "on a remote copy: left on"),
    Code.W_REMOTE_HOLD_GONE: (Category.WARNING, "the legal hold evidock placed on a remote "
                                                "copy is no longer on"),
    Code.I_INGESTED: (Category.OUTCOME, "copied, verified by re-reading from disk, stored "
                                        "and catalogued"),
    Code.I_DUPLICATE: (Category.OUTCOME, "this camera file is already in the catalog; "
                                         "nothing new stored"),
    Code.I_RENDITION_QUEUED: (Category.OUTCOME, "the rendition is a job in the catalog's "
                                                "PostgreSQL queue ([jobs] queue); an "
                                                "`evidock worker` makes it"),
    Code.I_JOB_QUEUED: (Category.OUTCOME, "handed to the job queue ([jobs] queue): a "
                                          "still, a redaction render, an export run or an "
                                          "upload that an `evidock worker` does"),
    Code.I_FIXITY_OK: (Category.OUTCOME, "blob present with its catalogued size and digests"),
    Code.I_FIXITY_TOMBSTONED: (Category.OUTCOME, "a blob retention removed is absent, as "
                                                 "expected"),
    Code.I_REPAIR_RESTORED: (Category.OUTCOME, "a damaged or missing blob was restored "
                                               "from its verified object-store copy "
                                               "(size, BLAKE3 and SHA-256 checked); the "
                                               "damaged copy kept in quarantine"),
    Code.I_REPAIR_NOT_NEEDED: (Category.OUTCOME, "repair asked for a blob that holds its "
                                                 "catalogued bytes: nothing changed"),
    Code.I_UPLOAD_VERIFIED: (Category.OUTCOME, "uploaded under Object Lock; the store's "
                                               "SHA-256 matches ours"),
    Code.I_UPLOAD_REUSED: (Category.OUTCOME, "already in the store with our SHA-256 (an "
                                             "earlier run died before recording it)"),
    Code.I_UPLOAD_WITHDRAWN: (Category.OUTCOME, "not uploaded: retention removed the blob"),
    Code.I_REMOTE_DELETED: (Category.OUTCOME, "a remote copy whose lock ran out was "
                                              "deleted"),
    Code.I_REMOTE_RETENTION_EXTENDED: (Category.OUTCOME, "a remote copy's Object Lock "
                                                         "retain-until date was extended"),
    Code.I_REMOTE_LEGAL_HOLD_ON: (Category.OUTCOME, "a legal hold was placed on a remote "
                                                    "copy"),
    Code.I_REMOTE_LEGAL_HOLD_OFF: (Category.OUTCOME, "evidock's legal hold on a remote copy "
                                                     "was released"),
    Code.I_RETENTION_DELETED: (Category.OUTCOME, "deleted by retention (a tombstone "
                                                 "records it)"),
    Code.I_RETENTION_WOULD_DELETE: (Category.OUTCOME, "dry run: would be deleted"),
    Code.I_RETENTION_CANCELLED: (Category.OUTCOME, "re-planned at run time: no longer due, "
                                                   "deletion cancelled"),
    Code.I_RETENTION_NOT_DUE: (Category.OUTCOME, "deletion scheduled, grace period not over"),
    Code.I_RETENTION_AWAITING_APPROVAL: (Category.OUTCOME, "deletion due, waiting for its "
                                                           "approvals"),
    Code.I_RETENTION_RACED: (Category.OUTCOME, "another run or approval changed this "
                                               "deletion meanwhile; left as is"),
    Code.I_RETENTION_AWAITING_SECOND_PERSON: (
        Category.OUTCOME, "deletion due and approved, but fewer than two distinct people "
                          "(system:* never counts) scheduled, approved and would run it: "
                          "another person approves or runs it; the runner's refusal is "
                          "audited"),
    Code.R_REMUX: (Category.OUTCOME, "video rendition by stream copy (codecs accepted)"),
    Code.R_TRANSCODE: (Category.OUTCOME, "video rendition transcoded to H.264/AAC"),
    Code.R_AUDIO: (Category.OUTCOME, "audio rendition by stream copy (codec accepted)"),
    Code.R_AUDIO_TRANSCODE: (Category.OUTCOME, "audio rendition transcoded"),
    Code.R_NONE: (Category.OUTCOME, "no rendition for this kind of file (photo, log, "
                                    "other): archived as original only"),
    Code.R_SALVAGED: (Category.OUTCOME, "salvaged derivative made (labelled NOT the "
                                        "original)"),
}


def markdown_table() -> str:
    """docs/CODES.md: every code with its category and meaning, in registry order."""
    rows = [f"| `{c}` | {c.category} | {c.meaning} |" for c in Code]
    return "\n".join([
        "# evidock codes",
        "",
        "Generated from `integrity/codes.py` by `python -m integrity.codes > docs/CODES.md`;",
        "`tests/test_codes.py` fails when this file is stale.",
        "",
        *[f"- **{c}**: {c.meaning}" for c in Category],
        "",
        "| code | category | meaning |",
        "|---|---|---|",
        *rows,
        "",
    ])


if __name__ == "__main__":
    print(markdown_table(), end="")
