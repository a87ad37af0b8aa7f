"""Shared servers on a real engine: simulated 8-card hosts (real device nodes under a host root,
the npu-smi / cnmon stand-ins printing usage and process tables), envctl's containers and foreign
ones (`docker run --device`) holding real device nodes. The privileged case cannot start in this
sandbox: tests/unit/test_card_choice.py covers it on the decision."""

import json
import os
import pty
import re
import signal
import subprocess
import sys

import pytest

from support import IMAGE


def manifest(env, tarballs, cards="2"):
    env.write(f"""\
        device: {{kind: npu, cards: {cards}}}
        image: {{ref: {IMAGE}, tarball: {{source: {tarballs.plain}}}}}
        """)


def on_host_of(first, second):
    """`second` planned and brought up on `first`'s simulated host."""
    second.root = first.root
    return second


def devices_of(engine, name) -> list[str]:
    """The card nodes (davinciN) the container was given."""
    attrs = engine.api.inspect_container(name)
    return sorted(d["PathOnHost"] for d in attrs["HostConfig"]["Devices"] or []
                  if re.search(r"/davinci[0-9]+$", d["PathOnHost"]))


def davinci(env, *cards) -> list[str]:
    return sorted(str(env.root / "dev" / f"davinci{c}") for c in cards)


@pytest.fixture
def foreign(engine, tarballs):
    """Containers started as a vendor script starts them: `docker run --device ...`, not envctl's."""
    started = []
    engine.images.load(tarballs.plain.read_bytes())  # the test image, which another test may have removed

    def run(name, *device_paths, extra=()):
        args = ["docker", "run", "-d", "--name", name, *extra]
        for path in device_paths:
            args += ["--device", path]
        subprocess.run([*args, IMAGE, "sleep", "600"], check=True, capture_output=True, text=True)
        started.append(name)
        return name

    yield run
    for name in started:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_two_environments_on_an_8_card_host_get_disjoint_cards(make_env, tarballs):
    first = make_env("npu", cards=8)
    second = on_host_of(first, make_env("none"))
    manifest(first, tarballs)
    manifest(second, tarballs)
    done = first.run("up", str(first.manifest), env=first.environ(USER="alice", LOGNAME="alice"))
    assert done.returncode == 0, done.stderr
    plan = second.run("plan", str(second.manifest))
    assert plan.returncode == 0, plan.stderr
    assert "2. devices     npu cards 2,3" in plan.stdout
    assert (f"why    2 free cards, lowest first, inside HCCS ring 0-3 (held: cards 0,1 by {first.container} "
            f"(environment {first.name}, user alice, since ") in plan.stdout
    done = second.run("up", str(second.manifest), env=second.environ(USER="bob", LOGNAME="bob"))
    assert done.returncode == 0, done.stderr
    assert devices_of(first.engine, first.container) == davinci(first, 0, 1)
    assert devices_of(second.engine, second.container) == davinci(first, 2, 3)
    assert first.get().labels["io.envctl.user"] == "alice" and second.get().labels["io.envctl.user"] == "bob"

    # Bringing the first up again keeps its cards: they are its own, not someone else's.
    again = first.run("plan", str(first.manifest))
    assert "npu cards 0,1" in again.stdout and f"the cards {first.container} already has, still free" in again.stdout

    status = json.loads(first.run("status", "--json").stdout)
    cards = {row["name"]: (row["cards"], row["user"]) for row in status}
    assert cards[first.container] == ([0, 1], "alice") and cards[second.container] == ([2, 3], "bob")

    shown = json.loads(first.run("cards", "--json").stdout)
    rows = {c["index"]: c for c in shown["families"][0]["cards"]}
    assert [h["container"] for h in rows[0]["holders"]] == [first.container]
    assert rows[2]["holders"][0]["user"] == "bob" and rows[2]["holders"][0]["environment"] == second.name
    assert rows[4]["free"] is True and rows[0]["free"] is False
    assert rows[0]["bus_id"] == "0000:C1:00.0" and rows[0]["memory_total"] == 32768 and rows[0]["temperature_c"] == 36

    doctor = first.run("doctor", str(first.manifest))
    in_use = next(line for line in doctor.stdout.splitlines() if line.startswith("OK    cards in use "))
    assert f"cards 0,1 by {first.container} (environment {first.name}, user alice" in in_use
    assert f"cards 2,3 by {second.container} (environment {second.name}, user bob" in in_use


def test_explicit_cards_held_by_a_foreign_container_are_refused_with_its_name(make_env, tarballs, foreign):
    env = make_env("npu", cards=8)
    holder = foreign(f"{env.name}-vendor", str(env.root / "dev/davinci2"), str(env.root / "dev/davinci3"))
    manifest(env, tarballs, cards='"2-3"')
    refused = env.run("up", str(env.manifest))
    assert refused.returncode == 5, refused.stderr
    assert (f"Ascend NPU cards 2,3 by {holder} (not envctl's, since ") in refused.stderr
    assert "free now: 0,1,4,5,6,7" in refused.stderr and "--share-cards" in refused.stderr
    assert env.get() is None

    # a count goes around it, and --share-cards takes them anyway, naming the holder
    counted = env.run("plan", str(env.manifest), "--card-count", "3")
    assert "npu cards 4,5,6" in counted.stdout, counted.stdout
    shared = env.run("up", str(env.manifest), "--share-cards")
    assert shared.returncode == 0, shared.stderr
    assert devices_of(env.engine, env.container) == davinci(env, 2, 3)

    text = env.run("cards").stdout
    assert f"card 2: {holder} (not envctl's, since " in text and f"card 2: {env.container} (environment" in text


def test_a_bind_mounted_dev_with_a_device_cgroup_rule_holds_the_cards(make_env, tarballs, foreign):
    # `-v /dev:/dev --device-cgroup-rule ...` as some lab scripts start containers: no --device, but
    # the rule lets it open the nodes. The simulated nodes have /dev/null's numbers (1:3); a rule for
    # another device (10:200, /dev/net/tun) opens none of them. (/hostdev: the simulated dev directory
    # has no /dev/null for the container's own /dev.)
    env = make_env("npu", cards=4)
    dev = f"{env.root / 'dev'}:/hostdev"
    holder = foreign(f"{env.name}-rule", extra=["--device-cgroup-rule", "c 1:3 rwm", "-v", dev])
    other = foreign(f"{env.name}-tun", extra=["--device-cgroup-rule", "c 10:200 rwm", "-v", dev])
    shown = json.loads(env.run("cards", "--json").stdout)
    for card in shown["families"][0]["cards"]:
        assert [(h["container"], h["how"]) for h in card["holders"]] == [(holder, "device cgroup rule")], card
    manifest(env, tarballs, cards="1")
    refused = env.run("up", str(env.manifest))
    assert refused.returncode == 5 and f"cards 0,1,2,3 by {holder} (not envctl's: device cgroup rule" in refused.stderr, refused.stderr
    assert other not in refused.stderr


def test_two_concurrent_ups_get_disjoint_cards(make_env, tarballs, engine):
    # The image is there before: concurrent loads of one image are another matter (each up's
    # image step stops when another loaded it since its plan), and this test is about cards.
    engine.images.load(tarballs.plain.read_bytes())
    first = make_env("npu", cards=8)
    others = [on_host_of(first, make_env("none")) for _ in range(2)]
    envs = [first, *others]
    for env in envs:
        manifest(env, tarballs)
    running = [env.popen("up", str(env.manifest)) for env in envs]
    outcomes = [p.communicate(timeout=300) for p in running]
    for process, (out, err) in zip(running, outcomes):
        assert process.returncode == 0, err
    taken = [devices_of(first.engine, env.container) for env in envs]
    flat = [path for paths in taken for path in paths]
    assert len(flat) == 6 and len(set(flat)) == 6, taken
    assert all(len(paths) == 2 for paths in taken)


def test_a_process_on_the_host_makes_its_card_busy(make_env, tarballs):
    env = make_env("npu", cards=4, used={0: 30000}, processes=[(0, 4242, "python3", 30000)])
    manifest(env, tarballs, cards="1")
    plan = env.run("plan", str(env.manifest))
    assert "npu cards 1" in plan.stdout and "card 0 by process 4242 python3 (in no container" in plan.stdout


def test_watch_refreshes_in_place_until_interrupted(make_env):
    env = make_env("mlu", cards=2, used={1: 4000}, processes=[(1, 31337, "python train.py --lr 1e-4", 4000)])
    # On a terminal (a pseudo-terminal here): the screen cleared before each frame, as `watch` does.
    controller, terminal = pty.openpty()
    watching = subprocess.Popen([sys.executable, "-m", "envctl", "cards", "--watch", "--interval", "0.2"],
                                stdout=terminal, stderr=subprocess.PIPE, env=env.environ())
    os.close(terminal)
    seen = b""
    try:
        while seen.count(b"\x1b[H\x1b[2J") < 3:
            chunk = os.read(controller, 4096)
            assert chunk, f"cards --watch ended: {seen!r}"
            seen += chunk
        watching.send_signal(signal.SIGINT)
        _, err = watching.communicate(timeout=60)
    finally:
        os.close(controller)
    assert watching.returncode == 0, err
    frame = seen.decode().replace("\r\n", "\n").split("\x1b[H\x1b[2J")[1]
    assert frame.startswith("envctl cards, every 0.2s (")
    assert "Cambricon MLU: 2 card(s)" in frame and "4000/23374 MiB" in frame and "20%" in frame
    assert "card 1: process 31337 python train.py --lr 1e-4, 4000 MiB" in frame

    # Into a pipe (a log, `| tee`): frames one after another, no escape sequences.
    piped = env.popen("cards", "--watch", "--interval", "0.2")
    out = ""
    while out.count("envctl cards, every 0.2s (") < 2:
        line = piped.stdout.readline()
        assert line, f"cards --watch ended: {out!r} {piped.communicate()[1]}"
        out += line
    piped.send_signal(signal.SIGINT)
    rest, err = piped.communicate(timeout=60)
    assert piped.returncode == 0, err
    assert "\x1b" not in out + rest and "card 1: process 31337 python train.py --lr 1e-4, 4000 MiB" in out


def test_a_count_passes_an_unhealthy_card_over_and_not_enough_says_how_to_go_on(make_env, tarballs, foreign):
    # npu-smi (the stand-in) marks card 1 Alarm; a foreign container holds 2 and 3.
    env = make_env("npu", cards=4, health={1: "Alarm"})
    holder = foreign(f"{env.name}-vendor", str(env.root / "dev/davinci2"), str(env.root / "dev/davinci3"))
    manifest(env, tarballs, cards="1")
    plan = env.run("plan", str(env.manifest))
    assert plan.returncode == 0, plan.stderr
    assert "2. devices     npu cards 0" in plan.stdout
    assert "passed over as unhealthy: card 1 Alarm (npu-smi's Health)" in plan.stdout

    shown = json.loads(env.run("cards", "--json").stdout)
    rows = {c["index"]: c for c in shown["families"][0]["cards"]}
    assert (rows[1]["health"], rows[1]["healthy"], rows[0]["healthy"]) == ("Alarm", False, True)
    assert "(unhealthy: not taken by a count)" in env.run("cards").stdout

    # Two wanted, one healthy card free: the blocker names the holder, the unhealthy card, the ways on.
    refused = env.run("up", str(env.manifest), "--card-count", "2")
    assert refused.returncode == 5, refused.stderr
    assert f"2 Ascend NPU cards wanted, 1 free of 4 present: cards 2,3 by {holder} (not envctl's, since " in refused.stderr
    assert "card 1 Alarm (npu-smi's Health). To go on: ask for 1 card or fewer (--card-count 1)" in refused.stderr
    assert "(--cards 0,2 --share-cards); `envctl cards` shows every card and who holds it" in refused.stderr
    assert env.get() is None

    # Asked for by index, the Alarm card is taken, with a warning in the plan.
    indexed = env.run("up", str(env.manifest), "--cards", "1")
    assert indexed.returncode == 0, indexed.stderr
    assert devices_of(env.engine, env.container) == davinci(env, 1)
    assert "warning    Ascend NPU card 1 Alarm (npu-smi's Health) asked for by index: taken as asked" in indexed.stderr
    planned = env.run("plan", str(env.manifest), "--cards", "1")
    assert "warning: Ascend NPU card 1 Alarm (npu-smi's Health) asked for by index" in planned.stdout
