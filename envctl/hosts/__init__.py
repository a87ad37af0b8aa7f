"""The Host seam: every side effect on a machine goes through a Host (local now, SSH later)."""
