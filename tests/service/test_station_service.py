"""The station service: who is asking comes from the kernel, never from the client."""

from __future__ import annotations

import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from evidock_testing import write_agency_config
from service_support import RunningService, audit_events, run_as


def test_whoami_is_the_os_account_the_kernel_reports(agency_service: RunningService) -> None:
    svc = agency_service
    run = svc.cli("whoami", "--json", user="legal")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["user"] == "legal"
    # What the client sets in its environment changes nothing: not the user, not
    # the rules (the old escape hatches).
    forged = svc.cli("whoami", "--json", user="clerk", env={
        "EVIDOCK_USER": "legal", "EVIDOCK_ACCESS__TRUST_ENV_USER": "true",
        "EVIDOCK_ACTOR": "user:legal"})
    assert forged.returncode == 0, forged.stderr
    assert json.loads(forged.stdout)["user"] == "clerk"


def test_an_unmapped_account_is_refused_and_audited(agency_service: RunningService) -> None:
    run = agency_service.cli("whoami", "--json", user="evt-nobody")
    assert run.returncode == 3, run.stderr
    assert json.loads(run.stdout)["error"]["code"] == "E_UNKNOWN_USER"
    assert ("os:evt-nobody", {"code": "E_UNKNOWN_USER"}) in audit_events(
        agency_service.home, "access.refused")


def test_no_service_is_a_clear_error_and_does_nothing(tmp_path: Path) -> None:
    run = run_as("evt-clerk", [sys.executable, "-m", "evidock", "whoami", "--json"],
                 env={"EVIDOCK_SOCKET": str(tmp_path / "absent.sock")})
    assert run.returncode == 2
    assert json.loads(run.stdout)["error"]["code"] == "E_SERVICE_UNAVAILABLE"


def test_the_service_refuses_rules_others_could_edit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = write_agency_config(home)
    config.chmod(0o664)
    env = {**os.environ, "EVIDOCK_HOME": str(home)}
    import subprocess

    run = subprocess.run([sys.executable, "-m", "evidock", "serve", "--socket",
                          str(tmp_path / "s.sock")], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2
    assert "E_CONFIG" in run.stderr and str(config) in run.stderr and "0664" in run.stderr


def test_the_service_loads_ffprobe_and_ffmpeg_before_it_says_it_is_ready(
        tmp_path: Path) -> None:
    """Before any camera: the first offload after a boot otherwise waited ~1.1 s for
    ffprobe's shared libraries inside its media check, reading them from the disk it
    copies to (issue 14). READY=1 (systemd, and every client waiting for it) comes only
    after both tools have run: each is held at a gate; a READY within 5 s of ffprobe
    starting, while it is held, fails. No request is made."""
    from evidock_testing import listening_fifo, read_lines, reporting_tools
    from service_support import serving

    home = tmp_path / "home"
    write_agency_config(home)
    ready, released = threading.Event(), threading.Event()

    def hold_then_release(fd: int, gate: int) -> list[str]:
        ran = read_lines(fd, 1)  # ffprobe has started and waits at the gate
        early = ready.wait(5)
        released.set()
        os.write(gate, b"go\ngo\n")  # one line for each tool
        return [*ran, *read_lines(fd, 1), "EARLY READY" if early else "ready after"]

    with listening_fifo(tmp_path / "ran") as fd, listening_fifo(tmp_path / "gate") as gate, \
            ThreadPoolExecutor(1) as pool:
        tools = reporting_tools(tmp_path / "bin", tmp_path / "ran", gate=tmp_path / "gate")
        holder = pool.submit(hold_then_release, fd, gate)
        with serving(home, env={"PATH": f"{tools}:{os.environ['PATH']}"}):
            held = not released.is_set()
            ready.set()
        ran = holder.result(timeout=60)
    assert not held, "READY=1 while ffprobe was held at its gate"
    assert ran == ["ffprobe -version", "ffmpeg -version", "ready after"]
