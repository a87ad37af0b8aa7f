"""`envctl logs` copies a log to stdout through the mask (envctl.execute.print_file): a detached
run's log holds what the program printed, passed secrets included."""

from envctl.execute import print_file

TOKEN = "hf_" + "a1b2c3d4" * 5


def test_a_secret_across_two_reads_and_one_at_the_very_end_are_masked(tmp_path, capsysbinary):
    log = tmp_path / "web.log"
    # print_file reads 65536 bytes at a time: the first token straddles the first boundary; the
    # last one ends the file without a newline (flushed whole at the end, not held back). A short
    # secret is masked only where it stands alone, not inside the run of x's.
    head = b"x" * (65536 - 10)
    log.write_bytes(head + b" " + TOKEN.encode() + b" examples xx\nlast " + TOKEN.encode())
    print_file(log, follow=False, secrets=(TOKEN, "xx"))
    out = capsysbinary.readouterr().out
    assert out == head + b" *** examples ***\nlast ***"


def test_without_secrets_the_log_is_copied_as_it_is(tmp_path, capsysbinary):
    log = tmp_path / "web.log"
    log.write_bytes(b"token=" + TOKEN.encode() + b"\n")
    print_file(log, follow=False)
    assert capsysbinary.readouterr().out == b"token=" + TOKEN.encode() + b"\n"
