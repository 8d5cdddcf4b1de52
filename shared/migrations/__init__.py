"""Provides the schema migrations (tortoise-orm 1.x); generated, then reviewed by hand."""
