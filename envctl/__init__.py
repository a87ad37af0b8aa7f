"""envctl: reproducible large-model environments on Cambricon MLU and Huawei Ascend servers."""

import sys as _sys

__version__ = "0.1.0"

# docker-py imports its SSH transport, and with it paramiko where installed, when it is
# imported (~90 ms of every command's start-up). envctl never uses that transport: remote hosts
# are reached through OpenSSH (envctl.remote.ssh). A None entry makes that one import fail,
# which docker-py tolerates.
_sys.modules.setdefault("docker.transport.sshconn", None)
