"""The station service: the one process that opens the catalog, the store and the keys.

The CLI and the web desk are its clients. It identifies every caller (the kernel's peer
credentials on the station socket; a login over the network), asks the one permission
gate, audits, and answers JSON over HTTP (``/api/v1``).
"""
