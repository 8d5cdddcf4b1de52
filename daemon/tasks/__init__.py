"""Provides the daemon's taskiq task functions (thin: each calls one service)."""
