"""The catalog: SQLModel tables and the repository around them."""

from archive.catalog.models import Blob, Device, DockSession, Officer, Recording, SessionFile, Wipe
from archive.catalog.repo import Catalog

__all__ = ["Blob", "Catalog", "Device", "DockSession", "Officer", "Recording", "SessionFile",
           "Wipe"]
