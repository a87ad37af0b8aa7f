"""Manifests: the YAML format, its loader, profiles, variables and discovery."""
