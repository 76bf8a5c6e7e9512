"""The tamper-evident audit log: a signed RFC 6962 Merkle log kept in the catalog."""
