"""HTTP entry points: the litestar app, per-role controllers, errors, the CLI."""
