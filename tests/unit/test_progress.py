"""envctl/progress.py: one bar per transfer, however many threads count its bytes."""

import threading

from envctl import progress as progress_module
from envctl.progress import ByteProgress


def test_threads_sharing_one_advance_whose_first_bytes_come_at_once_draw_one_bar(monkeypatch):
    # push_segmented sends a file's four parts in four threads through one advance; their first
    # bytes come at once. Two threads are held where the bar is made until both are there (or,
    # when only one can get there, as it should be, until the wait gives up): each making a bar
    # of its own showed one push as two lines, neither reaching its total.
    both_in = threading.Barrier(2, timeout=1)
    real_display = progress_module._display

    def display_when_both_are_in():
        try:
            both_in.wait()
        except threading.BrokenBarrierError:
            pass  # the other thread waits for this one's bar: the expected case
        return real_display()

    monkeypatch.setattr(progress_module, "_display", display_when_both_are_in)
    with ByteProgress() as progress:
        advance = progress("model.bin → lab1", 200)
        threads = [threading.Thread(target=lambda: [advance(1) for _ in range(100)]) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        bars = progress_module._shared.tasks
        assert [(bar.description, bar.completed, bar.total) for bar in bars] == [("model.bin → lab1", 200, 200)]


def test_a_transfer_that_never_counts_a_byte_draws_no_bar_and_one_that_counts_zero_draws_it():
    with ByteProgress() as progress:
        progress("reading x.tar", 10)  # asked for, never read: no display at all
        assert progress_module._shared is None
        progress("empty.bin", 0)(0)  # a file of no bytes: its bar, complete
        assert [(bar.completed, bar.total) for bar in progress_module._shared.tasks] == [(0, 0)]
    assert progress_module._shared is None
