"""SIGKILL the S3 server in the middle of a multipart upload: the item stays queued with
its upload id and acknowledged parts, an outage only pushes it back (attempts counted,
next attempt in the future, local blob untouched), and after the restart it resumes the
same multipart upload, sending only the parts the server does not have."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from s3server import WeedServer
from storage_support import T0, AddBlob, client_for, make_bucket, queue_for, retain

from archive.catalog import Catalog
from archive.replica.objectstore import MiB, ObjectStore
from archive.replica.s3 import MultipartState
from archive.store import ContentStore


def test_kill_mid_multipart_then_outage_then_resume(
        catalog: Catalog, store: ContentStore, own_server: WeedServer,
        add_blob: AddBlob) -> None:
    bucket = make_bucket(own_server.endpoint)
    blob = add_blob(size=6 * 5 * MiB + 777, seed=42)  # 7 parts of 5 MiB (last one short)
    client = client_for(own_server.endpoint)
    sent: list[int] = []
    client.meta.events.register("before-parameter-build.s3.UploadPart",
                                lambda params, **_: sent.append(params["PartNumber"]))
    objects = ObjectStore(client=client, bucket=bucket, part_size=5 * MiB,
                          multipart_threshold=5 * MiB, max_concurrency=1)
    states: list[MultipartState] = []

    def kill_after_two_parts(b3: str, state: MultipartState) -> None:
        states.append(state)
        if len(state.parts) == 2 and len(states) == 3:  # created, part 1, part 2
            own_server.kill()  # SIGKILL while the upload is half done

    queue = queue_for(catalog, store, objects, on_state=kill_after_two_parts)
    queue.enqueue(blob.blake3, now=T0, retain_until=retain())

    # 1. The server dies after part 2 was acknowledged (and persisted).
    [outcome] = queue.run_due(now=T0).items
    assert (outcome.state, outcome.code) == ("queued", "E_UPLOAD_UNAVAILABLE")
    item = queue.item(blob.blake3)
    assert item is not None and item.upload_id == states[0].upload_id
    assert [p["n"] for p in item.parts] == [1, 2] and item.attempts == 1
    first_retry = item.next_attempt_at
    assert first_retry > T0

    # 2. Still down: nothing is due before the backoff; once due, the attempt is counted
    #    and pushed back further. The local blob is untouched.
    assert queue.run_due(now=first_retry - timedelta(seconds=1)).items == ()
    [outcome] = queue.run_due(now=first_retry).items
    assert (outcome.state, outcome.code) == ("queued", "E_UPLOAD_UNAVAILABLE")
    item = queue.item(blob.blake3)
    assert item is not None and item.attempts == 2 and item.next_attempt_at > first_retry
    assert [e.event for e in queue.events(blob.blake3)] == ["retry", "retry"]
    assert queue.status(now=first_retry).counts["queued"] == 1
    assert hashlib.sha256(blob.path.read_bytes()).hexdigest() == blob.sha256

    # 3. Restarted on the same data: the same multipart upload is resumed and completed.
    own_server.start()
    sent.clear()
    [outcome] = queue.run_due(now=item.next_attempt_at).items
    assert outcome.state == "verified"
    assert sent == [3, 4, 5, 6, 7]  # parts 1 and 2 were not sent again
    [event] = [e for e in queue.events(blob.blake3) if e.event == "verified"]
    assert event.upload_id == states[0].upload_id and event.parts == 7
    assert event.checksum_type == "COMPOSITE" and event.remote_checksum.endswith("-7")
    body = client.get_object(Bucket=bucket, Key=event.key, VersionId=event.version_id)
    assert hashlib.sha256(body["Body"].read()).hexdigest() == blob.sha256
