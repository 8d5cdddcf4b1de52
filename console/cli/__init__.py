"""Provides the scriptable CLI of blast-console (subcommands); the TUI is what runs without one."""
