"""Witnessing of station audit logs: countersigned tree heads, the judge, the book."""
