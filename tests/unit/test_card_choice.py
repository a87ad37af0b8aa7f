"""Which cards the plan takes on a shared host, decided from what was observed: the decision on an
in-memory engine (tests/fake_engine.py) whose containers answer ContainerInspect's HostConfig
(Devices, Privileged, Runtime) and Config (Env, Labels) as Docker 20.10 does. A privileged
container cannot start in this sandbox, so that case is tested here only; envctl's and foreign
containers holding real device nodes: tests/integration/test_shared_cards.py."""

import pytest

import hostsim
from fake_engine import FakeEngine
from envctl.card_choice import Topology, choose, topology
from envctl.card_holders import Holder, holders_from
from envctl.containers import LABEL_CARDS, LABEL_MANIFEST, LABEL_USER
from envctl.devices.usage import CardReading, VendorReading
from envctl.hosts.local import LocalHost
from envctl.manifest.loader import load
from envctl.observe import observe
from envctl.plan import Options, build_plan
from envctl.render import plan_text

MANIFEST = """\
name: lab
description: a shared server
device: {kind: %s, cards: %s}
image: {ref: "lab/base:1"}
"""


@pytest.fixture
def lab(tmp_path, clean_env):
    environ = {**clean_env, "ENVCTL_CACHE": str(tmp_path / "cache"), "ENVCTL_WORKSPACE": str(tmp_path / "ws")}
    root = tmp_path / "root"

    class Lab:
        engine = FakeEngine()
        engine.add_image("sha256:" + "a" * 64, "lab/base:1")

        def host(self, kind="npu", cards=8, **kw):
            (hostsim.npu_host if kind == "npu" else hostsim.mlu_host)(root, cards=cards, **kw)
            return self

        def node(self, card, kind="npu"):
            return str(root / "dev" / (f"davinci{card}" if kind == "npu" else f"cambricon_dev{card}"))

        def foreign(self, name, cards=(), kind="npu", status="running", **kw):
            """A container envctl did not make (`docker run --device ...`, `--privileged`, the Ascend runtime)."""
            self._with(self.engine.add_container(name, {}, status), cards, kind, **kw)
            return self

        def envctl(self, name, cards, user="alice", kind="npu", status="running"):
            labels = {LABEL_MANIFEST: name.removeprefix("envctl-"), LABEL_CARDS: ",".join(map(str, cards)), LABEL_USER: user}
            self._with(self.engine.add_container(name, labels, status), cards, kind)
            return self

        def _with(self, container, cards, kind, privileged=False, env=None, runtime="runc"):
            container.devices = [self.node(c, kind) for c in cards]
            container.privileged, container.env, container.runtime = privileged, dict(env or {}), runtime

        def plan(self, kind="npu", cards="2", **options):
            path = tmp_path / "lab.yaml"
            path.write_text(MANIFEST % (kind, cards))
            loaded = load(str(path), environ=environ)
            observed = observe(LocalHost(str(root)), loaded, self.engine, environ=environ)
            return build_plan(loaded, observed, Options(**options), environ=environ)

    return Lab()


def test_a_count_takes_the_lowest_free_cards_and_says_which_are_held(lab):
    lab.host().envctl("envctl-alpaca", (0, 1), user="bob")
    plan = lab.plan()
    assert plan.devices.cards == (2, 3)
    assert plan.blockers == ()
    assert plan.devices.why.startswith("2 free cards, lowest first, inside HCCS ring 0-3 (held: cards 0,1 by envctl-alpaca "
                                       "(environment alpaca, user bob, since 2026-11-30 09:15 UTC))")
    assert "why    2 free cards" in plan_text(plan)
    assert plan.world.card_holders == ()


def test_explicit_cards_held_by_a_foreign_container_are_refused_naming_it(lab):
    lab.host().foreign("vendor-train", (2, 3))
    plan = lab.plan(cards='"2-3"')
    assert plan.blockers == ("Ascend NPU cards 2,3 by vendor-train (not envctl's, since 2026-11-30 09:15 UTC); free now: "
                             "0,1,4,5,6,7 (ask for a count to get free cards, or pass --share-cards to use these anyway)",)
    shared = lab.plan(cards='"2-3"', share_cards=True)
    assert shared.blockers == () and shared.devices.cards == (2, 3)
    assert shared.devices.why.startswith("as asked, shared (--share-cards): cards 2,3 by vendor-train")
    assert shared.world.card_holders == ("vendor-train",)


def test_a_privileged_container_holds_every_card(lab):
    lab.host().foreign("vendor-privileged", (), privileged=True)
    plan = lab.plan()
    assert plan.blockers == ("2 Ascend NPU cards wanted, 0 free of 8 present: cards 0,1,2,3,4,5,6,7 by vendor-privileged "
                             "(not envctl's: privileged, since 2026-11-30 09:15 UTC). To go on: name cards and pass "
                             "--share-cards to use them alongside their holders (--cards 0,1 --share-cards); "
                             "`envctl cards` shows every card and who holds it",)
    explicit = lab.plan(cards='"5"')
    assert "Ascend NPU card 5 by vendor-privileged" in explicit.blockers[0]


def test_the_ascend_runtime_holds_the_cards_its_variable_names(lab):
    lab.host().foreign("mindie", (), env={"ASCEND_VISIBLE_DEVICES": "0-3"}, runtime="ascend")
    plan = lab.plan(cards="2")
    assert plan.devices.cards == (4, 5)
    assert "cards 0,1,2,3 by mindie (not envctl's: Ascend runtime" in plan.devices.why


def test_stopped_containers_hold_nothing_and_the_own_container_keeps_its_cards(lab):
    lab.host().foreign("old-job", (0, 1), status="exited")
    lab.envctl("envctl-lab", (4, 5))  # this environment, up already with cards 4,5
    plan = lab.plan()
    assert plan.devices.cards == (4, 5)
    assert plan.devices.why.startswith("the cards envctl-lab already has, still free")


def test_not_enough_free_cards_lists_every_holder(lab):
    lab.host(cards=4).envctl("envctl-a", (0, 1), user="ana").foreign("job", (2,))
    plan = lab.plan(cards="2")
    assert plan.blockers == ("2 Ascend NPU cards wanted, 1 free of 4 present: cards 0,1 by envctl-a (environment a, "
                             "user ana, since 2026-11-30 09:15 UTC); card 2 by job (not envctl's, since 2026-11-30 09:15 UTC). "
                             "To go on: ask for 1 card or fewer (--card-count 1); name cards and pass --share-cards to use "
                             "them alongside their holders (--cards 0,3 --share-cards); `envctl cards` shows every card "
                             "and who holds it",)


def test_without_an_engine_the_first_cards_present_are_taken_and_the_plan_says_so(lab, tmp_path, clean_env):
    lab.host(kind="mlu", cards=4)
    environ = {**clean_env, "ENVCTL_CACHE": str(tmp_path / "cache")}
    path = tmp_path / "lab.yaml"
    path.write_text(MANIFEST % ("mlu", 2))
    loaded = load(str(path), environ=environ)
    plan = build_plan(loaded, observe(LocalHost(str(tmp_path / "root")), loaded, None, environ=environ), Options(), environ)
    assert plan.devices.cards == (0, 1)
    assert plan.devices.why == "the first 2 present; who holds cards is unknown (the engine was not asked)"


def test_mlu_holders_by_their_cambricon_nodes(lab):
    lab.host(kind="mlu", cards=4).envctl("envctl-other", (0,), kind="mlu")
    assert lab.plan(kind="mlu", cards=1).devices.cards == (1,)


def test_rings_keep_up_to_four_cards_in_one_ring():
    reading = VendorReading("npu-smi info", "MB", tuple(CardReading(i, "910ProB") for i in range(8)))
    topo = topology("npu", reading, tuple(range(8)))
    assert topo.rings == ((0, 1, 2, 3), (4, 5, 6, 7))
    held = (Holder("a", "1", (0, 1), "device nodes", "running"),)
    # 3 cards: ring 0-3 has only 2 free, so ring 4-7
    assert choose("Ascend NPU", tuple(range(8)), 3, held, topo=topo).cards == (4, 5, 6)
    assert choose("Ascend NPU", tuple(range(8)), 2, held, topo=topo).cards == (2, 3)
    spread = choose("Ascend NPU", tuple(range(8)), 4, (Holder("a", "1", (0, 4), "device nodes", "running"),), topo=topo)
    assert spread.cards == (1, 2, 3, 5) and "span rings" in spread.why
    a2 = VendorReading("npu-smi info", "MB", tuple(CardReading(i, "910B3") for i in range(8)))
    assert topology("npu", a2, tuple(range(8))).rings == ()


def test_boards_are_taken_whole_before_single_chips():
    topo = Topology(boards=((0, 1), (2, 3), (4, 5)))
    held = (Holder("a", "1", (0,), "device nodes", "running"),)
    assert choose("Ascend NPU", tuple(range(6)), 2, held, topo=topo).cards == (2, 3)
    assert choose("Ascend NPU", tuple(range(6)), 3, held, topo=topo).cards == (1, 2, 3)


def test_a_single_card_is_the_free_chip_of_a_board_already_split_not_one_of_a_whole_board():
    # Atlas A3 / 310P Duo: chip 1 of board (0, 1) is held; one card is chip 0, which leaves the
    # whole boards (2, 3) and (4, 5) for requests of two. Without a split board, the lowest chip.
    topo = Topology(boards=((0, 1), (2, 3), (4, 5)))
    split = (Holder("a", "1", (1,), "device nodes", "running"),)
    assert choose("Ascend NPU", tuple(range(6)), 1, split, topo=topo).cards == (0,)
    higher = (Holder("a", "1", (4,), "device nodes", "running"),)
    assert choose("Ascend NPU", tuple(range(6)), 1, higher, topo=topo).cards == (5,)
    assert choose("Ascend NPU", tuple(range(6)), 3, higher, topo=topo).cards == (0, 1, 5)
    assert choose("Ascend NPU", tuple(range(6)), 1, (), topo=topo).cards == (0,)


def test_holders_from_inspect_names_nvidia_requests_too():
    present = (0, 1, 2, 3)
    inspected = [{"Id": "c1", "Name": "/gpu-all", "State": {"Status": "running", "StartedAt": "2026-11-30T08:00:00Z"},
                  "Config": {"Labels": {}}, "HostConfig": {"DeviceRequests": [{"Driver": "nvidia", "Count": -1,
                                                                             "Capabilities": [["gpu"]]}]}},
                 {"Id": "c2", "Name": "/gpu-two", "State": {"Status": "running"}, "Config": {},
                  "HostConfig": {"DeviceRequests": [{"Driver": "", "DeviceIDs": ["1", "3"], "Capabilities": [["gpu"]]}]}},
                 {"Id": "c3", "Name": "/plain", "State": {"Status": "running"}, "Config": {}, "HostConfig": {}}]
    found = holders_from(inspected, "cuda", lambda c: f"/dev/nvidia{c}", present)
    assert [(h.container, h.cards, h.how) for h in found] == [("gpu-all", present, "NVIDIA runtime"),
                                                             ("gpu-two", (1, 3), "NVIDIA runtime")]



def test_a_bind_mounted_dev_with_a_device_cgroup_rule_holds_the_cards_the_rule_opens():
    # `docker run -v /dev:/dev --device-cgroup-rule 'c 236:* rwm'`: no --device, yet every node of
    # major 236 opens. The rule is matched against each node's numbers (stat(1) on the host).
    present = (0, 1, 2, 3)
    numbers = {f"/dev/davinci{c}": (236, c) for c in present}

    def container(name, rules, source="/dev", status="running"):
        return {"Id": name, "Name": "/" + name, "State": {"Status": status}, "Config": {},
                "HostConfig": {"DeviceCgroupRules": rules}, "Mounts": [{"Type": "bind", "Source": source, "Destination": "/dev"}]}

    inspected = [container("all-of-major", ["c 236:* rwm"]), container("one-minor", ["c 236:2 rw"]),
                 container("any-char", ["a *:* rwm"], source="/"), container("other-major", ["c 10:200 rwm"]),
                 container("read-only-mknod", ["c 236:* m"]), container("no-bind", ["c 236:* rwm"], source="/srv/data"),
                 container("node-itself", ["c *:1 rwm"], source="/dev/davinci1")]
    found = holders_from(inspected, "npu", lambda c: f"/dev/davinci{c}", present, numbers)
    assert [(h.container, h.cards, h.how) for h in found] == [("all-of-major", present, "device cgroup rule"),
                                                             ("any-char", present, "device cgroup rule"),
                                                             ("node-itself", (1,), "device cgroup rule"),
                                                             ("one-minor", (2,), "device cgroup rule")]
    assert holders_from(inspected, "npu", lambda c: f"/dev/davinci{c}", present) == ()  # numbers unknown: not seen

def test_under_the_lock_up_finds_cards_taken_since_the_plan(lab):
    from envctl.card_lock import CardsTaken, check_still_free

    lab.host()
    plan = lab.plan()
    assert plan.devices.cards == (0, 1)
    lab.envctl("envctl-lab", (0, 1))  # its own container (up applied before) is not someone else
    check_still_free(lab.engine, plan)
    lab.foreign("late-job", (1,))  # started after the plan was made
    with pytest.raises(CardsTaken) as taken:
        check_still_free(lab.engine, plan)
    assert taken.value.message.startswith("cards 1 were taken after the plan was made: card 1 by late-job (not envctl's")
    shared = lab.plan(cards='"1-2"', share_cards=True)  # a holder the plan saw and shares with is no news
    check_still_free(lab.engine, shared)


def test_cards_text_says_unknown_without_an_engine_and_lists_stopped_holders(tmp_path):
    from envctl.host_cards import lines, survey

    hostsim.npu_host(tmp_path, cards=2)
    unknown = "\n".join(lines(survey(LocalHost(str(tmp_path)), None, "the engine could not be asked: it is down")))
    assert unknown.startswith("who holds cards is unknown: the engine could not be asked: it is down")
    assert unknown.count(" unknown\n") + unknown.endswith(" unknown") == 2
    engine = FakeEngine()
    stopped = engine.add_container("old-job", {}, "exited")
    stopped.devices = [str(tmp_path / "dev/davinci1")]
    text = "\n".join(lines(survey(LocalHost(str(tmp_path)), engine)))
    assert "free\n" in text and "card 1: old-job (not envctl's, created 2026-11-30 09:15 UTC, exited)" in text
    # In --json, a stopped holder's time is when it was created, not a `since` it does not hold from.
    from envctl.host_cards import as_dict

    listed = as_dict(survey(LocalHost(str(tmp_path)), engine))["families"][0]["cards"][1]["holders"]
    assert [(h["status"], h["since"], h["created"]) for h in listed] == [("exited", None, "2026-11-30 09:15 UTC")]
