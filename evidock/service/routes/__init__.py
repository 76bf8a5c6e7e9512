"""The HTTP API, one router per domain (``/api/v1/...``)."""
