"""Provides the daemon's HTTP face: Meta's webhooks, /healthz and /metrics (see app.create_app)."""
