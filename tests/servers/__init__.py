"""Real loopback servers for tests: HTTP files, a Hugging Face Hub-compatible endpoint, FTP.

Every server binds 127.0.0.1 on an ephemeral port, runs in a background thread, and is a
context manager; `servers.fixtures` wraps each one as a pytest fixture.
"""
