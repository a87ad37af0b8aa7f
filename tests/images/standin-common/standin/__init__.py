"""Stand-ins for the programs of the vendor images (see tests/images/standin-common/Dockerfile)."""
