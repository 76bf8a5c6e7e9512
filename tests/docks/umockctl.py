"""umockdev testbed controller, run as its own process under libumockdev-preload.

umockdev's uevent sender must itself run preloaded, so the test drives the testbed
through this process: plain ctypes calls into libumockdev.so.0 (no PyGObject needed).
Protocol: the first stdout line is the testbed root (the daemon's UMOCKDEV_DIR); then
one JSON command per stdin line, one JSON reply per stdout line:

    {"op": "add", "desc": "<umockdev-record text>"} → {"ok": true, "syspath": "/sys/..."}
    {"op": "uevent", "syspath": ..., "action": "add"|"remove"|"change"} → {"ok": true}
    {"op": "remove", "syspath": ...} → {"ok": true}
"""

from __future__ import annotations

import ctypes
import json
import sys

PRELOAD = "libumockdev-preload.so.0"


class GError(ctypes.Structure):
    _fields_ = [("domain", ctypes.c_uint32), ("code", ctypes.c_int),
                ("message", ctypes.c_char_p)]


def load() -> ctypes.CDLL:
    lib = ctypes.CDLL("libumockdev.so.0")
    lib.umockdev_testbed_new.restype = ctypes.c_void_p
    lib.umockdev_testbed_get_root_dir.restype = ctypes.c_char_p
    lib.umockdev_testbed_get_root_dir.argtypes = [ctypes.c_void_p]
    lib.umockdev_testbed_add_from_string.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.POINTER(GError))]
    lib.umockdev_testbed_add_from_string.restype = ctypes.c_int
    lib.umockdev_testbed_uevent.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.umockdev_testbed_remove_device.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return lib


def main() -> int:
    lib = load()
    tb = lib.umockdev_testbed_new()
    print(lib.umockdev_testbed_get_root_dir(tb).decode(), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        reply: dict[str, object] = {"ok": True}
        if cmd["op"] == "add":
            err = ctypes.POINTER(GError)()
            if not lib.umockdev_testbed_add_from_string(tb, cmd["desc"].encode(),
                                                        ctypes.byref(err)):
                reply = {"ok": False, "error": err.contents.message.decode() if err else "?"}
            else:
                first = cmd["desc"].splitlines()[0]
                reply["syspath"] = "/sys" + first.removeprefix("P: ").strip()
        elif cmd["op"] == "uevent":
            lib.umockdev_testbed_uevent(tb, cmd["syspath"].encode(), cmd["action"].encode())
        elif cmd["op"] == "remove":
            lib.umockdev_testbed_remove_device(tb, cmd["syspath"].encode())
        else:
            reply = {"ok": False, "error": f"unknown op {cmd['op']!r}"}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
