"""Which environment `exec` (and the commands that take --env) runs in, chosen from the engine's
container list (envctl/environments.py choose_listed): one that is there but not running is
named with its state and the way back, not reported missing."""

from __future__ import annotations

import pytest

from envctl.containers import LABEL_MANIFEST, LABEL_VARIANT
from envctl.environments import choose_listed
from envctl.errors import EXIT_NOT_FOUND, EnvctlError


def summary(name: str, state: str, manifest: str, variant: str | None = None) -> dict:
    """A ContainerList summary as the engine gives it (GET /containers/json?all=1)."""
    labels = {LABEL_MANIFEST: manifest, **({LABEL_VARIANT: variant} if variant else {})}
    return {"Id": name.encode().hex().ljust(64, "0"), "Names": [f"/{name}"], "State": state, "Labels": labels, "Mounts": []}


LISTED = [summary("envctl-train", "running", "train"), summary("envctl-serve", "paused", "serve", "a2"),
          summary("envctl-eval", "exited", "eval")]


def refused(wanted: str | None, listed=LISTED) -> EnvctlError:
    with pytest.raises(EnvctlError) as caught:
        choose_listed(listed, wanted)
    assert caught.value.exit_code == EXIT_NOT_FOUND
    return caught.value


def test_the_running_one_is_chosen_by_name_manifest_or_alone():
    assert choose_listed(LISTED, "envctl-train").name == "envctl-train"
    assert choose_listed(LISTED, "train").name == "envctl-train"
    assert choose_listed(LISTED, None).name == "envctl-train"  # the only one running


@pytest.mark.parametrize("wanted, said, hint", [
    ("serve:a2", "environment 'serve:a2' is not running (envctl-serve: paused); up: envctl-train",
     "`envctl up serve:a2` makes it run again"),
    ("envctl-eval", "environment 'envctl-eval' is not running (envctl-eval: exited); up: envctl-train",
     "`envctl up eval` makes it run again"),
])
def test_one_there_but_not_running_is_named_with_its_state(wanted, said, hint):
    error = refused(wanted)
    assert (error.message, error.hint) == (said, hint)


def test_one_not_there_at_all_is_not_found():
    assert refused("infer").message == "no environment 'infer' is up; up: envctl-train"


def test_none_running_names_those_that_do_not_run():
    error = refused(None, LISTED[1:])
    assert error.message == "no environment is running (envctl-eval: exited, envctl-serve: paused)"  # by name
    assert refused(None, []).message == "no environment is running"


def test_a_state_is_not_looked_at_when_any_will_do():
    assert choose_listed(LISTED, "eval", running_only=False).status == "exited"


def test_the_manifest_file_or_its_directory_names_the_environment_brought_up_from_it(tmp_path, monkeypatch):
    """As everywhere a command takes NAME (`envctl down ./m/train.yaml`): the path of the file it
    was brought up from (label io.envctl.manifest-file), relative or absolute, or its bundle
    directory; another file of the same name elsewhere names nothing."""
    from envctl.containers import LABEL_FILE

    bundle = tmp_path / "train"
    bundle.mkdir()
    (bundle / "manifest.yaml").write_text("")
    single = tmp_path / "serve.yaml"
    single.write_text("")
    listed = [summary("envctl-train", "running", "train"), summary("envctl-serve", "running", "serve")]
    listed[0]["Labels"][LABEL_FILE] = str(bundle / "manifest.yaml")
    listed[1]["Labels"][LABEL_FILE] = str(single)
    monkeypatch.chdir(tmp_path)
    assert choose_listed(listed, "train/manifest.yaml").name == "envctl-train"
    assert choose_listed(listed, str(bundle)).name == "envctl-train"
    assert choose_listed(listed, "./serve.yaml").name == "envctl-serve"
    assert choose_listed(listed, str(single), running_only=False).name == "envctl-serve"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "serve.yaml").write_text("")
    with pytest.raises(EnvctlError) as caught:
        choose_listed(listed, "elsewhere/serve.yaml")
    assert caught.value.message == "no environment 'elsewhere/serve.yaml' is up; up: envctl-serve, envctl-train"
