"""Composition root: the `evidock` CLI and the web app. Nothing imports this package."""
