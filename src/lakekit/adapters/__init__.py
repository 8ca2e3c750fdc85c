"""Adapters, one package per provider and one module per (provider, interface)."""
