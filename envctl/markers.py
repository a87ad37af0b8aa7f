"""Setup markers: files in the container's own filesystem, one per setup step that ran.

A marker is named by the step's index and its chained hash (which covers the step, every step
before it, the artifacts it uses and the image's ref), so which markers exist tells, before
anything runs, which steps are unchanged. A changed image recreates the container, which has no
markers. A step that failed leaves a `.failed` marker of its hash
instead, so the next plan can say "failed last time" rather than "never ran".
"""

from __future__ import annotations

STATE_DIR = "/var/lib/envctl"  # read whole by the plan: the markers and the claims in one archive
MARKER_DIR = f"{STATE_DIR}/setup"
FAILED_SUFFIX = ".failed"
# A step runs under a claim file of its marker's name, holding the PID (in the container) of the
# wrapper that runs it (envctl/setup_steps.py). $0: the claim; $1: the marker; $2: the step's
# name (read back from the exec's arguments by `status` and `plan`); then the step's argv.
CLAIM_DIR = f"{STATE_DIR}/claims"
CLAIM_HELD = "envctl-setup-claim: held by pid"
CLAIM_DONE = "envctl-setup-claim: ran meanwhile"
CLAIM_EXIT = 213
# The wrapper writes the step's marker itself once the step succeeded (so `up` needs no exec of
# its own for it: three Engine API requests, each a round trip to an SSH host, issue 14); a
# marker it could not write is said with this text, in its output's last line before the exit
# word (the failed write's message before it, on the same stream, so in order), and exit
# MARKER_EXIT. The write is `true > FILE`, not `: > FILE`: a redirection that fails on a special
# built-in such as `:` ends a POSIX sh (dash, busybox) at once, before the word, the exit code and
# the claim's release.
MARKER_UNWRITTEN = "envctl-setup-marker: could not write"
MARKER_EXIT = 214
_CLAIMED = (  # the claim taken: the start of every claim wrapper's text
    'mkdir -p "${0%/*}" || exit 1; c="$0"; m="$1"; shift 2; '
    'if ! (set -C; echo $$ > "$c") 2>/dev/null; then '
    'p=; read -r p < "$c"; '
    'if [ -z "$p" ] || kill -0 "$p" 2>/dev/null; then echo "' + CLAIM_HELD + ' ${p:-?}"; exit ' + str(CLAIM_EXIT) + '; fi; '
    'rm -f "$c"; (set -C; echo $$ > "$c") 2>/dev/null || { echo "' + CLAIM_HELD + ' ?"; exit ' + str(CLAIM_EXIT) + '; }; fi; '
    'if [ -e "$m" ]; then rm -f "$c"; echo "' + CLAIM_DONE + '"; exit ' + str(CLAIM_EXIT) + '; fi; '
)


# The wrapper's last words: EXIT_WORD and its exit code, ending its output's last line (after the
# step's own last line where that had no newline), so that `up` reads the step's exit code from
# its output instead of asking the engine for the exec's (one request less per step: a round
# trip to an SSH host, issue 14). The record separator (0x1e) is not in what steps print.
EXIT_WORD = "\x1eenvctl-setup-exit"


def _claim_wrapper(write: str, said: bool = True) -> str:
    """The claim wrapper whose marker is written by the shell command `write` (`write > FILE`);
    `said`: it ends saying its exit code (EXIT_WORD)."""
    say = """printf '\\036envctl-setup-exit %s\\n' "$code"; """ if said else ""
    return _CLAIMED + (
        '"$@"; code=$?; if [ $code -eq 0 ]; then { mkdir -p "${m%/*}" && ' + write + ' > "$m"; } 2>&1 || '
        '{ code=' + str(MARKER_EXIT) + '; echo "' + MARKER_UNWRITTEN + ' $m"; }; fi; rm -f "$c"; ' + say + 'exit $code'
    )


CLAIM_WRAPPER = _claim_wrapper("true")
# Every claim wrapper envctl ran, this one first: a step an earlier envctl started may still run
# in the container, and `status`, `plan` and `down` read it as a setup step by its wrapper's text
# (envctl/runs.py), not as some exec.
CLAIM_WRAPPERS = (
    CLAIM_WRAPPER,
    _claim_wrapper("true", said=False),  # before the exit code was said
    _claim_wrapper(":", said=False),  # `: > FILE`, which a failed redirection ended at once
    _CLAIMED + '"$@"; code=$?; if [ $code -eq 0 ]; then mkdir -p "${m%/*}" && : > "$m"; fi; rm -f "$c"; exit $code',
)


def marker_name(index: int, step_hash: str) -> str:
    """The file name (no directory) of a step's marker: `003-<sha256 hex>`."""
    return f"{index:03d}-{step_hash}"


def marker_path(index: int, step_hash: str) -> str:
    return f"{MARKER_DIR}/{marker_name(index, step_hash)}"


def failed_path(index: int, step_hash: str) -> str:
    return marker_path(index, step_hash) + FAILED_SUFFIX


def index_of(name: str) -> int | None:
    """The step index a marker file name carries, or None for a name envctl did not write."""
    head, _, _ = name.partition("-")
    return int(head) if head.isdigit() else None
