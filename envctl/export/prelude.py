"""envctl's export prelude: run in every node's container before the node's command.

It maps what the cluster engine gives the container (an index, the master's host name) to
envctl's per-node contract, exactly as `exec --nodes` computes it: the contract module beside
this file is envctl/nodes/contract.py as shipped. Steps:

1. rank: ENVCTL_EXPORT_RANK, else the variable node.json names (`rank_from`: VC_TASK_INDEX,
   JOB_COMPLETION_INDEX, PET_NODE_RANK, RANK, SLURM_NODEID, ...); never the engine's
   WORLD_SIZE (pods, processes or NPUs depending on the engine).
2. master: ENVCTL_EXPORT_MASTER, else `master` (a host name) or the variable `master_from`;
   resolved to an IPv4 address, retried until it resolves (pods start in any order).
3. rendezvous on the master port: rank 0 listens, every other rank connects (retrying until the
   master answers: this is the wait for the master) and says its rank and its address towards
   the master (its side of the connection) and interface, and its name when the engine gave it
   one (ENVCTL_EXPORT_NAME: the Slurm node, the server's host name). Rank 0 answers with every
   node in rank order and one run ID, then closes, and the port is free for the launcher.
   A node's name: ENVCTL_EXPORT_NAME, else node.json's `names` (pod host names the export
   knows in advance), else node-<rank>.
4. the contract (build_contract), its files in the per-run directory, the environment without
   RANK/LOCAL_RANK/WORLD_SIZE/LOCAL_WORLD_SIZE/GROUP_RANK, then exec of the node's command.

Runs on Python 3.7 and later (the oldest vendor images), standard library only.
"""

import json
import os
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":  # in the container: contract.py beside this file
    sys.path.insert(0, HERE)
    from contract import FORBIDDEN, ContractError, Node, build_contract, new_run_id
else:  # imported from envctl itself (the tests, the format registry)
    from envctl.nodes.contract import FORBIDDEN, ContractError, Node, build_contract, new_run_id

SIOCGIFADDR = 0x8915  # linux/sockios.h


class PreludeError(Exception):
    pass


def say(text):
    sys.stderr.write("envctl prelude: %s\n" % text)
    sys.stderr.flush()


def read_spec(path):
    with open(path) as handle:
        return json.load(handle)


def from_env(environ, literal, name, what):
    if environ.get(literal):
        return environ[literal]
    return None if name is None else _required(environ, name, what)


def _required(environ, name, what):
    value = environ.get(name)
    if not value:
        raise PreludeError("%s: the engine did not set %s" % (what, name))
    return value


def find_rank(spec, environ):
    text = from_env(environ, "ENVCTL_EXPORT_RANK", spec.get("rank_from"), "rank")
    if text is None or not text.strip().isdigit() or int(text) >= spec["nnodes"]:
        raise PreludeError("rank %r is not a node index below %d" % (text, spec["nnodes"]))
    return int(text)


def find_master(spec, environ):
    name = environ.get("ENVCTL_EXPORT_MASTER") or spec.get("master")
    return name or _required(environ, spec.get("master_from"), "master")


def resolve(name, deadline):
    while True:
        try:
            return socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        except socket.gaierror:
            if time.time() > deadline:
                raise PreludeError("the master %s did not resolve in time" % name)
            time.sleep(1)


def interface_of(address):
    """The interface holding `address` (SIOCGIFADDR on each), or None."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _index, name in socket.if_nameindex():
            try:
                raw = __import__("fcntl").ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
            except OSError:
                continue
            if socket.inet_ntoa(raw[20:24]) == address:
                return name
    finally:
        probe.close()
    return None


def _lines(conn):
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data.decode()) if data.strip() else None


def node_name(spec, rank, told=None):
    """The name nodes.json gives rank `rank`: what the node said (ENVCTL_EXPORT_NAME), else
    node.json's names, else node-<rank>."""
    if told:
        return told
    names = spec.get("names") or []
    return names[rank] if rank < len(names) else "node-%d" % rank


def rendezvous_master(spec, port, deadline, name=None):
    """Rank 0: collect every other rank's hello, answer with the nodes and the run ID. `name`:
    this node's own name, if the engine gave one."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("", port))
    listener.listen(spec["nnodes"])
    hellos, conns, own = {}, [], None
    try:
        while len(hellos) < spec["nnodes"] - 1:
            listener.settimeout(max(1.0, deadline - time.time()))
            try:
                conn, _peer = listener.accept()
            except socket.timeout:
                raise PreludeError("ranks %s did not reach the master in time" % sorted(
                    set(range(1, spec["nnodes"])) - set(hellos)))
            conn.settimeout(60)
            hello = _lines(conn)
            if not hello or hello.get("rank") in hellos or not 0 < int(hello.get("rank", 0)) < spec["nnodes"]:
                conn.sendall((json.dumps({"error": "rank %r twice or out of range" % (hello or {}).get("rank")}) + "\n").encode())
                conn.close()
                raise PreludeError("a node said rank %r, which is taken or out of range" % (hello or {}).get("rank"))
            own = own or conn.getsockname()[0]
            hellos[hello["rank"]] = hello
            conns.append(conn)
        nodes = [[node_name(spec, 0, name), own, spec["processes"], interface_of(own), own]]
        nodes += [[node_name(spec, r, hellos[r].get("name")), hellos[r]["address"], spec["processes"],
                   hellos[r]["ifname"], hellos[r]["address"]] for r in range(1, spec["nnodes"])]
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        answer = {"nodes": nodes, "run_id": new_run_id(spec["entrypoint"], stamp, os.urandom(3).hex())}
        for conn in conns:
            conn.sendall((json.dumps(answer) + "\n").encode())
        for conn in conns:  # the other side closes first: no TIME_WAIT on the master's port
            try:
                conn.recv(1)
            except OSError:
                pass
            conn.close()
        return answer
    finally:
        for conn in conns:  # on a failure, the nodes waiting for an answer get none, at once
            conn.close()
        listener.close()


def rendezvous_node(rank, master, port, deadline, name=None):
    """Any other rank: reach the master (retrying: it may not run yet), say who we are (`name`:
    this node's own name, if the engine gave one)."""
    while True:
        try:
            conn = socket.create_connection((resolve(master, deadline), port), timeout=10)
            break
        except OSError:
            if time.time() > deadline:
                raise PreludeError("the master %s:%d did not answer in time" % (master, port))
            time.sleep(1)
    try:
        conn.settimeout(max(10.0, deadline - time.time()))
        address = conn.getsockname()[0]
        hello = {"rank": rank, "address": address, "ifname": interface_of(address)}
        if name:
            hello["name"] = name
        conn.sendall((json.dumps(hello) + "\n").encode())
        answer = _lines(conn)
    finally:
        conn.close()
    if not answer or "error" in answer:
        raise PreludeError("the master refused this node: %s" % (answer or {}).get("error", "no answer"))
    return answer


def contract_of(spec, answer):
    nodes = [Node(name, address, processes, ifname, source) for name, address, processes, ifname, source in answer["nodes"]]
    return build_contract(nodes, spec["port"], answer["run_id"], spec["device_kind"])


def write_run_dir(contract, rank):
    os.makedirs(contract.run_dir, exist_ok=True)
    for name, text in contract.files(rank).items():
        with open(os.path.join(contract.run_dir, name), "w") as handle:
            handle.write(text)


def main(argv):
    spec = read_spec(os.environ.get("ENVCTL_EXPORT_SPEC") or os.path.join(HERE, "node.json"))
    deadline = time.time() + spec.get("timeout", 1800)
    try:
        rank = find_rank(spec, os.environ)
        master = find_master(spec, os.environ)
        port = spec["port"]
        say("rank %d of %d, master %s:%d" % (rank, spec["nnodes"], master, port))
        name = os.environ.get("ENVCTL_EXPORT_NAME") or None
        if rank == 0:
            answer = rendezvous_master(spec, port, deadline, name)
        else:
            answer = rendezvous_node(rank, master, port, deadline, name)
        contract = contract_of(spec, answer)
    except (PreludeError, ContractError) as problem:
        say("error: %s" % problem)
        return 1
    write_run_dir(contract, rank)
    env = {k: v for k, v in os.environ.items() if k not in FORBIDDEN}
    env.update(contract.env(rank))
    say("run %s: master %s:%d, %d nodes, %d processes" % (contract.run_id, contract.master_addr, contract.master_port,
                                                          contract.nnodes, contract.world_size))
    if spec.get("workdir"):
        os.chdir(spec["workdir"])
    command = spec["command"]
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
