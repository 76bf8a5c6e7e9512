"""Upload bench: evidock's uploader against a plain boto3 ``upload_file``, in one run.

    .venv/bin/python -m bench.upload [--mib 1024] [--runs 3] [--data DIR] [--no-doc]

Builds (once; cached under bench/data/upload-v2-<N>mib) about --mib MiB of incompressible
files: one of 40 % of the total (far above the 32 MiB multipart threshold), then 48 MiB
files (multipart too), 24 MiB and 4 MiB files (single PUTs). Starts a SeaweedFS server on
127.0.0.1 (tests/replica/s3server.py; its data dir is scratch next to the files), then,
after one untimed warm-up upload of a few small files by each (the server grows its
first volumes then), alternating, --runs times each, with the files in the page cache:

- ``evidock``: ``ObjectStore.upload`` of every file as a blob (COMPLIANCE lock, SHA-256
  sent for every body, local BLAKE3 re-checked, composite checksum compared, HEAD before
  and after each object); 16 MiB parts, 4 in flight;
- ``boto3``: ``client.upload_file`` of the same files into the same bucket with boto3's
  defaults (TransferConfig: 8 MiB parts, 10 threads; default checksum behaviour), no lock.

Each contender runs in its own child process and reports its own peak RSS (VmHWM), not
the server's. Reports medians, MB/s, the ratio (target ≥ 0.8×) and peak RSS, and
writes the "## Upload" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import blake3

from bench.common import (
    REPO,
    MiB,
    machine_info,
    markdown_table,
    mb_per_s,
    median,
    run_child,
    warm_up,
    write_section,
)

TARGET_RATIO = 0.8
CONTENDERS = ("evidock", "boto3")
PART_SIZE, THRESHOLD, CONCURRENCY = 16 * MiB, 32 * MiB, 4  # ObjectStore's defaults


def _s3server() -> Any:
    """tests/replica/s3server.py (the tests' server launcher; not a package module)."""
    path = REPO / "tests" / "replica" / "s3server.py"
    spec = importlib.util.spec_from_file_location("evidock_s3server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.upload", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mib", type=int, default=1024, help="total size of the files (MiB)")
    p.add_argument("--runs", type=int, default=3, help="runs per contender (median)")
    p.add_argument("--data", type=Path, default=REPO / "bench" / "data")
    p.add_argument("--doc", action=argparse.BooleanOptionalAction, default=True,
                   help="write the Upload section of docs/BENCHMARKS.md")
    p.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    p.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- data -----------------------------------------------------------------------------


def _sizes(total_mib: int) -> list[int]:
    """40 % in one big file, then 48 MiB (multipart), 24 MiB and 4 MiB (single PUT) files."""
    total = total_mib * MiB
    big = max(2 * THRESHOLD + 12345, int(total * 0.4) + 12345)
    sizes = [big]
    for share, size in ((0.3, 48 * MiB + 999), (0.2, 24 * MiB + 555), (0.1, 4 * MiB + 77)):
        sizes += [size] * max(1, int(total * share) // size)
    return sizes


def build_files(data: Path, total_mib: int) -> list[dict[str, Any]]:
    """The bench files and their digests, built once (manifest.json marks completion)."""
    root = data / f"upload-v2-{total_mib}mib"
    manifest = root / "manifest.json"
    if manifest.exists():
        return list(json.loads(manifest.read_text(encoding="utf-8")))
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    files = []
    for i, size in enumerate(_sizes(total_mib)):
        payload = blake3.blake3(f"upload-bench-{i}".encode()).digest(length=size)
        path = root / f"file-{i:03d}.bin"
        path.write_bytes(payload)
        files.append({"path": str(path), "size": size,
                      "blake3": blake3.blake3(payload).hexdigest(),
                      "sha256": hashlib.sha256(payload).hexdigest()})
    manifest.write_text(json.dumps(files), encoding="utf-8")
    return files


# -- children (one contender each, timed inside) ---------------------------------------


def _child_evidock(job: dict[str, Any]) -> None:
    from archive.replica.objectstore import ObjectStore, make_s3_client
    from archive.replica.s3 import BlobRef

    client = make_s3_client(endpoint_url=job["url"], access_key_id=job["access_key"],
                            secret_access_key=job["secret_key"],
                            max_pool_connections=CONCURRENCY + 2)
    objects = ObjectStore(client=client, bucket=job["bucket"], key_prefix=job["prefix"],
                          part_size=PART_SIZE, multipart_threshold=THRESHOLD,
                          max_concurrency=CONCURRENCY)
    until = datetime.now(UTC) + timedelta(days=1)
    for f in job["files"]:
        objects.upload(BlobRef(blake3=f["blake3"], sha256=f["sha256"], size=f["size"],
                               path=Path(f["path"])), retain_until=until)


def _child_boto3(job: dict[str, Any]) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=job["url"], region_name="us-east-1",
                          aws_access_key_id=job["access_key"],
                          aws_secret_access_key=job["secret_key"],
                          config=Config(s3={"addressing_style": "path"}))
    for f in job["files"]:
        client.upload_file(f["path"], job["bucket"], f"{job['prefix']}/{f['blake3']}")


def _vmhwm_kib() -> int:
    """This process's peak RSS since exec (VmHWM). ``wait4``'s ru_maxrss would not do:
    Linux carries the pre-exec high-water mark (the forking parent's RSS) across execve."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def child(kind: str, job_path: Path) -> int:
    job = json.loads(job_path.read_text(encoding="utf-8"))
    start = time.perf_counter()
    (_child_evidock if kind == "evidock" else _child_boto3)(job)
    job["wall_s"] = time.perf_counter() - start
    job["vmhwm_kib"] = _vmhwm_kib()
    job_path.write_text(json.dumps(job), encoding="utf-8")
    return 0


# -- parent ---------------------------------------------------------------------------


def run_once(kind: str, endpoint: Any, bucket: str, files: list[dict[str, Any]],
             scratch: Path) -> tuple[float, int]:
    """One contender uploading every file under a fresh prefix: (wall s, peak RSS KiB)."""
    warm_up([Path(f["path"]) for f in files])
    job = scratch / f"job-{kind}-{uuid.uuid4().hex[:8]}.json"
    job.write_text(json.dumps({"url": endpoint.url, "access_key": endpoint.access_key,
                               "secret_key": endpoint.secret_key, "bucket": bucket,
                               "prefix": f"run-{uuid.uuid4().hex[:8]}", "files": files}),
                   encoding="utf-8")
    run_child([sys.executable, "-m", "bench.upload", "--child", kind, "--job", str(job)])
    done = json.loads(job.read_text(encoding="utf-8"))
    job.unlink()
    return float(done["wall_s"]), int(done["vmhwm_kib"])


def report(files: list[dict[str, Any]], results: dict[str, list[tuple[float, int]]], *,
           mib: int, runs: int, boot_s: float) -> str:
    total = sum(int(f["size"]) for f in files)
    walls = {k: median([w for w, _ in v]) for k, v in results.items()}
    rss = {k: max(r for _, r in v) for k, v in results.items()}
    ratio = walls["boto3"] / walls["evidock"] if walls["evidock"] else 0.0
    rows = [(k, f"{walls[k]:.2f}", f"{mb_per_s(total, walls[k]):.0f}",
             f"{walls['boto3'] / walls[k]:.2f}×", f"{rss[k] / 1024:.0f}",
             " / ".join(f"{w:.2f}" for w, _ in results[k])) for k in CONTENDERS]
    info = machine_info()
    big = max(int(f["size"]) for f in files)
    n48, n24, n4 = (sum(1 for f in files if int(f["size"]) // MiB == m) for m in (48, 24, 4))
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    return f"""Command: `.venv/bin/python -m bench.upload --mib {mib} --runs {runs}`
({info['date']}; {info['machine']}; Python {info['python']}).

Data: {len(files)} files, {total / MiB:.0f} MiB in all: one of {big / MiB:.0f} MiB and
{n48} of 48 MiB (multipart: above the 32 MiB threshold), {n24} of 24 MiB and {n4} of 4 MiB
(single PUTs); incompressible, in the page cache. Server: SeaweedFS (`weed server -s3`,
tests/replica/s3server.py) on 127.0.0.1, booted in {boot_s:.1f} s, sharing the 2 cores
with the client. Each contender is a child process (peak RSS is its own VmHWM, read at
its end); runs alternate, medians of {runs}.

{markdown_table(("contender", "wall s (median)", "MB/s", "vs boto3", "peak RSS MiB",
                 "runs (s)"), rows)}

- **evidock** = `ObjectStore.upload` per file: COMPLIANCE retain-until, SHA-256 sent with
  every PUT/part and checked by the server, the local bytes re-checked against the blob's
  BLAKE3 name while streaming, the composite checksum compared, a HEAD before (already
  there?) and after (size + checksum + lock) each object. 16 MiB parts, 4 in flight, one
  attempt per call.
- **boto3** = `client.upload_file` with boto3's defaults (8 MiB parts, 10 threads, its
  default CRC checksums), no lock, no verification afterwards.
- Ratio evidock/boto3 throughput: **{ratio:.2f}×** — {verdict} the ≥ {TARGET_RATIO}× target.
  Memory is bounded by 4 parts in flight × 16 MiB (a part is read only when a slot is free)
  plus the interpreter and boto3, whatever the file size.
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args.child, args.job)
    s3server = _s3server()
    files = build_files(args.data, args.mib)
    scratch = args.data / f"upload-scratch-{os.getpid()}"
    scratch.mkdir(parents=True, exist_ok=True)
    server = s3server.WeedServer(root=scratch / "weed")
    try:
        t0 = time.perf_counter()
        endpoint = server.start()
        boot_s = time.perf_counter() - t0
        bucket = "evidock-bench"
        endpoint.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        small = [f for f in files if int(f["size"]) < THRESHOLD][:8]
        for kind in CONTENDERS:  # untimed: the server grows its first volumes here
            run_once(kind, endpoint, bucket, small, scratch)
        results: dict[str, list[tuple[float, int]]] = {k: [] for k in CONTENDERS}
        for i in range(args.runs):
            for kind in CONTENDERS if i % 2 == 0 else tuple(reversed(CONTENDERS)):
                wall, rss = run_once(kind, endpoint, bucket, files, scratch)
                results[kind].append((wall, rss))
                print(f"run {i + 1} {kind}: {wall:.2f} s, {rss / 1024:.0f} MiB", flush=True)
        body = report(files, results, mib=args.mib, runs=args.runs, boot_s=boot_s)
    finally:
        server.kill()
        shutil.rmtree(scratch, ignore_errors=True)
    print(body)
    if args.doc:
        write_section("Upload", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
