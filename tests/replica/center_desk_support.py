"""The world of the center desk tests (test_center_desk.py, test_center_desk_exports.py):
a center on PostgreSQL witnessing one station that rendered the synthetic camera in 1 s
segments, uploaded it and pushed its log, a 个人隐私 case of 城东中队 linked to its
longest video. Built once per test process by the ``center_desk`` fixture in this
directory's conftest: both modules only add to it (requests, audit events, passwords),
and each looks only at what its own test made.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from center_support import (
    World,
    make_case,
    make_center,
    make_station,
    pg_world,
    publish,
    rendered_segments,
)
from desk_support import PASSWORDS, DeskStation, set_passwords
from s3server import S3Endpoint
from service_support import serving

from archive.catalog.models import Segment
from archive.store import ContentStore
from evidock.web import i18n

STATION = "station-p"
CASE = "邵城管罚〔2026〕第201号"
#: test_center_desk.py's users (test_center_desk_exports.py adds its own).
USERS = ("clerk", "clerk2", "admin")
T = {"zh": i18n.words("zh").gettext, "en": i18n.words("en").gettext}


@dataclass(frozen=True)
class CenterDesk:
    world: World
    desk: DeskStation  # the center's `evidock serve`
    video: str  # the station's video with the most segments, linked to CASE
    segments: list[Segment]  # its segments as the station holds them
    case_id: str

    def local(self, segment: Segment) -> bytes:
        """The segment's bytes in the station's own store."""
        store = ContentStore(root=self.world.station(STATION) / "store")
        return store.path_for(segment.blake3).read_bytes()

    def page_url(self) -> str:
        return f"{self.desk.url}/center/recordings/{STATION}/{self.video}"

    def api(self, tail: str = "") -> str:
        return f"{self.desk.svc.url}/api/v1/center/recordings/{STATION}/{self.video}{tail}"


@contextmanager
def center_desk_world(root: Path, endpoint: S3Endpoint, camera: Path) -> Iterator[CenterDesk]:
    """The world under ``root``, its center serving until the block ends."""
    with pg_world(root, endpoint, [STATION]) as world:
        make_station(world, STATION, camera, render=True,
                     extra_toml="\n[rendition]\nsegment_seconds = 1\n")
        make_center(world, [STATION])
        set_passwords(world.center_home, {u: PASSWORDS[u] for u in USERS})
        home = world.station(STATION)
        rendered = rendered_segments(home)
        video = max(rendered, key=lambda r: len(rendered[r]))
        assert len(rendered[video]) >= 2, {k: len(v) for k, v in rendered.items()}
        with serving(world.center_home) as center:
            with serving(home) as station:
                case_id = make_case(station, CASE, "城东中队", "个人隐私", link=video)
                publish(station, home)
            yield CenterDesk(world=world, desk=DeskStation(svc=center, home=world.center_home,
                                                           recordings=()),
                             video=video, segments=rendered[video], case_id=case_id)
