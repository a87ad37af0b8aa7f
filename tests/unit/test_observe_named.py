"""The plan's first round asks the container's inspection, processes and setup state by its name
(envctl/observe_engine.py view); _named takes those answers only when they are the container the
same round's list gave: its inspection names the listed ID."""

from envctl.observe_engine import ContainerState, _named

LISTED = ContainerState("envctl-a", "c" * 64, "running")
INSPECTED = (200, {"Id": "c" * 64, "State": {"Running": True}})
TOP = (200, {"Titles": ["PID"], "Processes": [["1"]]})
ARCHIVE = (200, b"tar")


def test_the_listed_containers_answers_are_taken():
    assert _named([INSPECTED, TOP, ARCHIVE], LISTED) == (INSPECTED, TOP, ARCHIVE)


def test_another_container_of_that_name_none_listed_or_a_failed_round_are_asked_by_id():
    other = (200, {"Id": "d" * 64})
    assert _named([other, TOP, ARCHIVE], LISTED) is None  # made again between the list and the inspection
    assert _named([INSPECTED, TOP, ARCHIVE], None) is None  # a container of that name without envctl's label
    assert _named([(404, {"message": "No such container"}), (404, None), (404, None)], LISTED) is None
    assert _named([(0, None)] * 3, LISTED) is None  # the round did not answer
    assert _named([(200, ["not", "a", "map"]), TOP, ARCHIVE], LISTED) is None
