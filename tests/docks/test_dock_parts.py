"""The dock's parts in-process: registry, settings, the vendor driver against a fake
camera on a real pty, sd_notify over a real socket, deadlines, the folder source, and
the systemd/udev/tmpfiles files checked by systemd's own tools."""

from __future__ import annotations

import os
import queue
import re
import shutil
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dockutil import REPO
from fakezfy import FakeCamera

from config import Settings
from docks.drivers import MassStorageDriver, battery_percent
from docks.folders import FolderSource, WatchedBay
from docks.registry import CameraLike, Ignored, Registered, bay_for_port, classify, udev_rules
from docks.sdnotify import Notifier
from docks.settings import load_dock_settings
from docks.sources import Docked, SourceEvent, Undocked
from docks.zfy import (
    GET_TIME,
    GET_ZFY_INFO,
    READ_BATTERY,
    DriverError,
    ZfyDriver,
    decode_frame,
    encode_frame,
)
from integrity.errors import ConfigError

SHANGHAI = ZoneInfo("Asia/Shanghai")
DOCK = {
    "cameras": [{"name": "zfy", "vendor_id": "2bdf", "model_id": "0101",
                 "serial_pattern": "ZFY[0-9]{4}", "camera_model": "generic-dcim"},
                {"name": "dsj", "vendor_id": "1d6b", "camera_model": "generic-record",
                 "driver": "zfy-serial", "password": "123456"}],
    "bays": [{"number": 1, "id_path": "pci-0000:00:14.0-usb-0:1:*"}],
}


def test_registry_registered_camera_like_and_ignored(settings: Settings) -> None:
    dock = load_dock_settings(settings, DOCK)
    cam = {"ID_VENDOR_ID": "2BDF", "ID_MODEL_ID": "0101", "ID_SERIAL_SHORT": "ZFY0001"}
    assert classify(cam, dock) == Registered(dock.cameras[0], "ZFY0001")
    assert isinstance(classify({**cam, "ID_SERIAL_SHORT": "ABC"}, dock), Ignored)
    any_model = {"ID_VENDOR_ID": "1d6b", "ID_MODEL_ID": "9999", "ID_SERIAL_SHORT": "X"}
    assert classify(any_model, dock).entry.name == "dsj"  # type: ignore[union-attr]
    label = r"\xe6\x89\xa7\xe6\xb3\x95\xe8\xae\xb0\xe5\xbd\x95\xe4\xbb\xaa"  # 执法记录仪
    like = classify({"ID_VENDOR_ID": "aaaa", "ID_FS_LABEL_ENC": label}, dock)
    assert isinstance(like, CameraLike) and like.hint == "执法"
    assert 'vendor_id = "aaaa"' in like.snippet()
    gbk = "".join(f"\\x{b:02x}" for b in "记录仪".encode("gbk"))
    assert isinstance(classify({"ID_VENDOR_ID": "aaaa", "ID_MODEL_ENC": gbk}, dock), CameraLike)
    stick = {"ID_VENDOR_ID": "0781", "ID_VENDOR": "SanDisk", "ID_MODEL": "Cruzer"}
    assert "not a registered camera" in classify(stick, dock).reason  # type: ignore[union-attr]
    assert bay_for_port("pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0", dock).number == 1
    assert bay_for_port("pci-0000:00:14.0-usb-0:2:1.0-scsi-0:0:0:0", dock) is None
    rules = udev_rules(dock)
    assert 'ENV{ID_VENDOR_ID}=="2bdf", ENV{ID_MODEL_ID}=="0101", ENV{EVIDOCK_CAMERA}="1"' in rules
    assert 'ENV{ID_VENDOR_ID}=="1d6b", ENV{EVIDOCK_CAMERA}="1"' in rules


@pytest.mark.parametrize(("change", "key"), [
    ({"cameras": [{"name": "x", "vendor_id": "2bdf", "camera_model": "nope"}]}, "dock.cameras"),
    ({"cameras": [{"name": "x", "vendor_id": "2bdf", "camera_model": "generic-dcim",
                   "driver": "zfy-serial", "password": "12345"}]}, "dock.cameras.0"),
    ({"wipe": "always"}, "dock.wipe"),
    ({"bays": [{"number": 1}, {"number": 1}]}, "dock"),
])
def test_bad_dock_settings_name_the_key(settings: Settings, change: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_dock_settings(settings, change)
    assert err.value.details["key"] == key


def test_vendor_driver_unlocks_identifies_and_reads_the_clock() -> None:
    camera_clock = datetime(2026, 11, 23, 16, 0, 30, tzinfo=SHANGHAI)
    fake = FakeCamera(password=b"888888", clock=camera_clock.replace(tzinfo=None))
    drv = ZfyDriver.open(fake.port, password="888888", zone=SHANGHAI, timeout_s=5)
    try:
        with pytest.raises(DriverError, match="locked"):
            drv.call(GET_ZFY_INFO)
        assert drv.identify().serial == "ZFY0001"
        drv.unlock()
        ident = drv.identify()
        assert (ident.serial, ident.officer, ident.officer_name, ident.unit_id,
                ident.unit_name) == ("ZFY0001", "123456", "张三", "110105000000", "朝阳分局")
        station = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)  # 16:00:00 in Shanghai
        assert drv.read_clock() - station == timedelta(seconds=30)
        drv.sync_clock(station)
        assert fake.synced == "20261123160000"
    finally:
        drv.close()


def _battery(fake: FakeCamera, *, unlock: bool = True) -> tuple[int | None, str]:
    """(what the dock records, what the raw call says) for one fake camera."""
    drv = ZfyDriver.open(fake.port, password="888888", zone=SHANGHAI, timeout_s=5)
    try:
        if unlock:
            drv.unlock()
        try:
            said = str(drv.read_battery())
        except DriverError as exc:
            said = exc.message
        return battery_percent(drv), said
    finally:
        drv.close()


@pytest.mark.parametrize(("battery", "unlock", "recorded", "said"), [
    (37, True, 37, "37"),
    (0, True, 0, "0"),
    (100, True, 100, "100"),
    (37, False, None, "camera locked"),  # only after SetMSDC, like the other info calls
    (b"\x65", True, None, "battery reply unreadable: '65'"),  # 101 %
    (b"\xff", True, None, "battery reply unreadable: 'ff'"),
    (b"", True, None, "battery reply unreadable: ''"),
    (b"\x25\x00", True, None, "battery reply unreadable: '2500'"),
    (None, True, None, "unknown command"),  # firmware without ReadDeviceBatteryDumpEnergy
])
def test_vendor_driver_reads_the_battery_or_it_is_not_reported(
        battery: int | bytes | None, *, unlock: bool, recorded: int | None, said: str) -> None:
    fake = FakeCamera(password=b"888888", clock=datetime(2026, 1, 1), battery=battery)
    got, message = _battery(fake, unlock=unlock)
    assert got == recorded and said in message, message


def test_a_camera_pulled_or_silent_mid_call_is_not_reported() -> None:
    pulled = FakeCamera(password=b"888888", clock=datetime(2026, 1, 1))
    pulled.pulled_at.add(READ_BATTERY)  # USB unplugged mid-call: the control line is gone
    drv = ZfyDriver.open(pulled.port, password="888888", zone=SHANGHAI, timeout_s=5)
    try:
        drv.unlock()
        assert battery_percent(drv) is None
        with pytest.raises((DriverError, OSError)):
            drv.read_battery()
    finally:
        drv.close()
    # A camera that stops answering: the reply's timeout, not a hang or a crash.
    silent = FakeCamera(password=b"888888", clock=datetime(2026, 1, 1))
    silent.silent.add(READ_BATTERY)
    drv = ZfyDriver.open(silent.port, password="888888", zone=SHANGHAI, timeout_s=0.2)
    try:
        drv.unlock()
        with pytest.raises(DriverError, match="did not answer"):
            drv.read_battery()
        assert battery_percent(drv) is None
    finally:
        drv.close()
    assert battery_percent(MassStorageDriver(serial="X")) is None


def test_vendor_driver_refuses_a_wrong_password_and_bad_frames() -> None:
    fake = FakeCamera(password=b"888888", clock=datetime(2026, 1, 1))
    drv = ZfyDriver.open(fake.port, password="000000", zone=SHANGHAI, timeout_s=5)
    try:
        with pytest.raises(DriverError, match="wrong password"):
            drv.unlock()
    finally:
        drv.close()
    frame = bytearray(encode_frame(GET_TIME, b"abc"))
    assert decode_frame(bytes(frame))[0].payload == b"abc"  # type: ignore[union-attr]
    assert decode_frame(b"junk" + bytes(frame[:4]))[0] is None  # incomplete: wait for more
    frame[-1] ^= 0xFF
    with pytest.raises(DriverError, match="checksum"):
        decode_frame(bytes(frame))


def test_sd_notify_datagrams(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "20000000",
                      "WATCHDOG_PID": str(os.getpid())})
        assert n.watchdog_s == 20
        assert n.ready("idle") and n.watchdog() and n.stopping()
        got = [sock.recv(4096).decode() for _ in range(3)]
    assert got == ["READY=1\nSTATUS=idle", "WATCHDOG=1", "STOPPING=1"]
    off = Notifier({})
    assert not off.enabled and not off.ready() and off.watchdog_s is None


def test_folder_source_debounces_ignores_dot_dirs_and_sees_removal(tmp_path: Path) -> None:
    bay = tmp_path / "bay1"
    src = FolderSource(bays=(WatchedBay(1, bay, "generic-dcim"),), settle_s=0.05)
    events: queue.Queue[SourceEvent] = queue.Queue()
    src.start(events.put)
    try:
        (bay / ".incoming").mkdir()
        (bay / ".incoming" / "A.MP4").write_bytes(b"x" * 1000)
        os.rename(bay / ".incoming", bay / "cam")
        docked = events.get(timeout=30)
        assert isinstance(docked, Docked)
        assert (docked.key, docked.props["BAY"]) == (str(bay / "cam"), "1")
        shutil.rmtree(bay / "cam")
        gone = events.get(timeout=30)
        assert isinstance(gone, Undocked) and gone.key == str(bay / "cam")
    finally:
        src.stop()
    assert events.empty(), "one dock and one undock: the .incoming dir was never reported"


def _systemd(*argv: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} not installed (Debian package systemd)")
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60)


UNITS = ("evidock.service", "evidock-dock.service", "evidock-scheduler.service",
         "evidock-worker.service")


def _installed(tmp_path: Path, name: str) -> Path:
    """The unit as installed: ExecStart pointing at this checkout's evidock."""
    exe = shutil.which("evidock") or str(REPO / ".venv" / "bin" / "evidock")
    assert Path(exe).exists(), "the evidock console script is installed in the venv"
    path = tmp_path / name
    path.write_text(_unit_text(name).replace("/opt/evidock/.venv/bin/evidock", exe))
    return path


def _unit_text(name: str) -> str:
    return (REPO / "systemd" / name).read_text()


def _directives(name: str) -> dict[str, list[str]]:
    """Each ``Key=value`` of the unit, values in order (a key may repeat)."""
    out: dict[str, list[str]] = {}
    for line in _unit_text(name).splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.parametrize("name", UNITS)
def test_systemd_unit_verifies(tmp_path: Path, name: str) -> None:
    res = _systemd("systemd-analyze", "verify", "--man=no", str(_installed(tmp_path, name)))
    assert res.returncode == 0, res.stderr
    assert name not in res.stderr, res.stderr
    unit = _directives(name)
    for key, value in (("Type", "notify"), ("NoNewPrivileges", "yes"),
                       ("ProtectSystem", "strict"), ("ReadWritePaths", "/var/lib/evidock"),
                       ("PrivateTmp", "yes"), ("ProtectHome", "yes"),
                       ("RestrictNamespaces", "yes"), ("SystemCallArchitectures", "native")):
        assert unit.get(key) == [value], (name, key, unit.get(key))
    assert unit["SystemCallFilter"][0].startswith("@system-service"), name


@pytest.mark.parametrize("name", ["evidock.service", "evidock-scheduler.service",
                                  "evidock-worker.service"])
def test_service_and_scheduler_run_as_the_service_account_without_privileges(
        name: str) -> None:
    unit = _directives(name)
    assert unit["User"] == ["evidock"] and unit["Group"] == ["evidock"]
    assert unit["CapabilityBoundingSet"] == [""] and unit["AmbientCapabilities"] == [""]
    assert unit["PrivateDevices"] == ["yes"] and unit["UMask"] == ["0027"]
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "PrivateUsers" not in unit, "it would show root's config as nobody's"


def test_the_service_unit_listens_where_the_cli_looks() -> None:
    from config.service import DEFAULT_SOCKET

    unit = _directives("evidock.service")
    assert unit["ExecStart"] == ["/opt/evidock/.venv/bin/evidock serve"]
    assert unit["RuntimeDirectory"] == ["evidock"] and unit["RuntimeDirectoryMode"] == ["0755"]
    assert DEFAULT_SOCKET == "/run/evidock/evidock.sock"
    assert "StateDirectory" not in unit, (
        "systemd would chown a mismatched home recursively, the root-owned config with it")


def test_the_dock_runs_as_the_service_account_with_cap_sys_admin_alone() -> None:
    unit = _directives("evidock-dock.service")
    assert unit["User"] == ["evidock"] and unit["Group"] == ["evidock"]
    assert unit["CapabilityBoundingSet"] == ["CAP_SYS_ADMIN"], "mount(2)/umount2(2) only"
    assert unit["AmbientCapabilities"] == unit["CapabilityBoundingSet"]
    assert unit["SupplementaryGroups"] == ["dialout"], "vendor cameras' control ttys"
    assert unit["WatchdogSec"] == ["2min"] and unit["DevicePolicy"] == ["closed"]
    assert "block-sd rw" in unit["DeviceAllow"] and "char-ttyUSB rw" in unit["DeviceAllow"]
    assert unit["UMask"] == ["0027"] and unit["PrivateMounts"] == ["yes"]
    assert "@mount" in unit["SystemCallFilter"][0].split()
    assert "~@privileged" in unit["SystemCallFilter"][1].split(), "no chown, setuid, chroot"


@pytest.mark.parametrize(("name", "ceiling"), [("evidock.service", 3.0),
                                               ("evidock-scheduler.service", 3.0),
                                               ("evidock-worker.service", 3.0),
                                               ("evidock-dock.service", 2.5)])
def test_systemd_security_exposure(tmp_path: Path, name: str, ceiling: float,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    res = _systemd("systemd-analyze", "security", "--offline=yes", "--no-pager",
                   str(_installed(tmp_path, name)))
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\S+)", res.stdout)
    assert found is not None, (res.returncode, res.stdout[-500:], res.stderr)
    score, label = float(found.group(1)), found.group(2)
    with capsys.disabled():
        print(f"\n{name}: systemd-analyze security exposure {score} {label} "
              f"(ceiling {ceiling})")
    assert score <= ceiling, res.stdout


def test_tmpfiles_creates_the_private_tree(tmp_path: Path) -> None:
    conf = REPO / "systemd" / "evidock.tmpfiles.conf"
    # Names are resolved in the --root's own account database, as on a station.
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\nevidock:x:990:990::/var/lib/evidock:/usr/sbin/nologin\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nevidock:x:990:\n")
    res = _systemd("systemd-tmpfiles", "--create", f"--root={tmp_path}", str(conf))
    assert res.returncode == 0, res.stderr
    home = tmp_path / "var" / "lib" / "evidock"
    st = home.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (990, 990, 0o750)
    mnt = home / "run" / "mnt"
    assert mnt.is_dir() and (mnt.stat().st_mode & 0o777) == 0o700
    assert (mnt.stat().st_uid, mnt.stat().st_gid) == (990, 990), "the dock's, which mounts"


def test_udev_rules_file_tags_and_hides_cameras() -> None:
    text = (REPO / "systemd" / "70-evidock-cameras.rules").read_text()
    assert 'ENV{EVIDOCK_CAMERA}="1"' in text and 'ENV{UDISKS_IGNORE}="1"' in text
    rules = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert rules[0].startswith('ACTION=="remove"') and rules[-1] == 'LABEL="evidock_end"'
