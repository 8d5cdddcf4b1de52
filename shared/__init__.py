"""Provides blast's common code: configuration, models, the state machine, services and the WhatsApp client."""
