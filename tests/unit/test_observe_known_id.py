"""The plan's first round asks the container's inspection, processes and setup state by the ID an
earlier command saw it with (envctl/observe_engine.py view); _known takes those answers only when
they are the container the same round's list gave: its inspection names the listed ID."""

from envctl.observe_engine import ContainerState, _known

LISTED = ContainerState("envctl-a", "c" * 64, "running")
INSPECTED = (200, {"Id": "c" * 64, "State": {"Running": True}})
TOP = (200, {"Titles": ["PID"], "Processes": [["1"]]})
ARCHIVE = (200, b"tar")


def test_the_listed_containers_answers_are_taken():
    assert _known([INSPECTED, TOP, ARCHIVE], LISTED) == (INSPECTED, TOP, ARCHIVE)


def test_a_container_made_again_none_listed_or_a_failed_round_are_asked_by_the_listed_id():
    other = (200, {"Id": "d" * 64})
    assert _known([other, TOP, ARCHIVE], LISTED) is None  # not the listed one (another than remembered)
    assert _known([INSPECTED, TOP, ARCHIVE], None) is None  # none listed: removed since
    assert _known([(404, {"message": "No such container"}), (404, None), (404, None)], LISTED) is None
    assert _known([(0, None)] * 3, LISTED) is None  # the round did not answer
    assert _known([(200, ["not", "a", "map"]), TOP, ARCHIVE], LISTED) is None
