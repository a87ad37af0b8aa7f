"""The texts of an exec record searched for credentials (envctl/quick_exec_record.py _texts):
every text it holds (the listing's labels too, where a --var value shows), but the fingerprints,
its key and the listing's IDs and hashes, where a short value would be found by chance."""

from envctl.quick_exec_record import _texts

ID = "8" * 12 + "0123456789abcdef" * 3
RECORD = {
    "format": 2, "key": "8" * 64,
    "remote": {"destination": "lab1", "forward": "/tmp/ec/docker-1", "session": ["ssh", "--", "sh"],
               "commands": [{"argv": ["ssh", "lab1", "--", "kind"], "returncode": 0, "stdout": "8" * 64,
                             "stderr": None}]},
    "listing": {"containers": [[ID, ["/envctl-a"], "running",
                                {"io.envctl.vars": '{"note": "hf_secret"}', "io.envctl.image-id": "sha256:" + "8" * 64},
                                []]], "baked_for": []},
    "files": {"/m.yaml": ["sha256", "8" * 64]}, "stats": {"/run.env": [1, 8, 8, 8, 8]},
    "run": {"argv": ["sh", "-c", "echo"]}, "stderr": "warning: X is not set\n",
}


def test_a_label_holding_a_credential_is_among_the_texts():
    assert any("hf_secret" in text for text in _texts(RECORD))


def test_ids_hashes_and_fingerprints_are_not():
    texts = _texts(RECORD)
    assert not any("8" in text for text in texts), texts
    assert {"/m.yaml", "/run.env", "lab1", "kind", "warning: X is not set\n"} <= set(texts)
