"""envctl/quick_exec.py's pure parts: the one form it answers, and what of the engine's listing a
record compares (never the summaries' "Status", nor the order the engine lists mounts in, nor
the containers' IDs)."""

from __future__ import annotations

from envctl.containers import LABEL_BAKED_FOR, LABEL_MANIFEST
from envctl.quick_exec import LABEL_BAKED_FOR as QUICK_BAKED_FOR, LABEL_MANIFEST as QUICK_MANIFEST
from envctl.quick_exec import answered_form, listing_facts


def test_the_labels_are_the_containers_modules():
    assert (QUICK_MANIFEST, QUICK_BAKED_FOR) == (LABEL_MANIFEST, LABEL_BAKED_FOR)


def test_only_exec_entry_with_one_host_is_answered():
    for option in ("--host", "--hosts", "-H"):
        assert answered_form(["exec", "train", option, "lab3"])
    for args in (["exec", "train"], ["exec", "train", "--host", "lab1,lab2"], ["exec", "train", "--host", "-x"],
                 ["exec", "--env", "e", "--host", "lab1"], ["exec", "train", "--host", "lab1", "--detach"],
                 ["exec", "train", "--nodes", "lab1"], ["up", "train", "--host", "lab1"],
                 ["exec", "train", "--host=lab1"], ["exec", "", "--host", "lab1"]):
        assert not answered_form(args), args


SUMMARY = {"Id": "c1", "Names": ["/envctl-a"], "State": "running", "Status": "Up 5 minutes",
           "Labels": {LABEL_MANIFEST: "a"},
           "Mounts": [{"Type": "bind", "Source": "/w", "Destination": "/envctl"},
                      {"Type": "bind", "Source": "/m", "Destination": "/models"}]}


def test_the_status_text_and_the_mounts_order_are_not_compared():
    later = {**SUMMARY, "Status": "Up 6 minutes", "Mounts": list(reversed(SUMMARY["Mounts"]))}
    assert listing_facts([SUMMARY], {"a"}) == listing_facts([later], {"a"})


def test_a_container_made_again_with_the_same_labels_and_mounts_is_the_same_listing():
    # The run names its container; its ID is no fact of the run's resolution (`down` then `up`).
    again = {**SUMMARY, "Id": "c9"}
    assert listing_facts([again], {"a"}) == listing_facts([SUMMARY], {"a"})


def test_what_choosing_and_planning_read_is_compared():
    other = {**SUMMARY, "Id": "c2", "Names": ["/envctl-b"], "Labels": {LABEL_MANIFEST: "b"}}
    facts = listing_facts([SUMMARY, other], {"a"})
    assert facts == listing_facts([other, SUMMARY], {"a"})  # the engine's order of containers neither
    for changed in ({"State": "exited"}, {"Names": ["/envctl-c"]}, {"Labels": {LABEL_MANIFEST: "c"}},
                    {"Mounts": SUMMARY["Mounts"][:1]}):
        assert listing_facts([{**SUMMARY, **changed}, other], {"a"}) != facts, changed
    assert listing_facts([SUMMARY, other], {"a", "b"}) != facts  # an image baked for another manifest
    assert listing_facts([SUMMARY], {"a"}) != facts  # an environment removed
