"""Shipped policy profiles (TOML package data): default, strict, nist. See docs/policy.md."""
