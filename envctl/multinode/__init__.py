"""One run across several hosts: `exec ENTRYPOINT --nodes a,b` (prepare, supervise, command).

envctl.nodes holds the pure parts (contract, launchers, addresses); this package reaches the hosts."""
