"""Offload, media, store and catalog: everything that touches footage on its way in."""
