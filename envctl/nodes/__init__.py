"""One training across several hosts (`envctl exec ENTRYPOINT --nodes lab1,lab2`).

The pure foundations live here: how a command text starts a launcher and whether it is pinned to
one node (shellwords, pins), the per-node commands each launcher needs (launchers), the per-node
contract (contract), the choice of master address and interfaces (addresses) and the HCCL rank
table (ranktable). Nothing in this package touches a host.
"""
