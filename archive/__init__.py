"""The evidence vault: content store, catalog, audit log, fixity, station keys,
tombstones and the WORM replica."""
