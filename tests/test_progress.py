"""Progress bars in logs: into a file (DVC's stage logs, `dvc repro > log 2>&1`, SLURM files: not a terminal) a bar
writes a whole line now and then (no '\r' redraws that `cat` shows as one ever longer line), its postfix never cut,
its final state once; on a terminal it stays tqdm's redrawn bar."""

from __future__ import annotations

import io
import re

import pytest
import tqdm.std

from replab import runtime as rt


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def bar_lines(stream: io.StringIO) -> list[str]:
    return [line for line in re.split(r"[\r\n]", stream.getvalue()) if line.strip()]


def log_lines(stream: io.StringIO) -> list[str]:
    """The log's lines, checked to be plain lines: newline-terminated, no carriage return, no padding."""
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text  # no redraws, no cursor moves
    assert text == "" or text.endswith("\n")
    lines = text.splitlines()
    assert all(line == line.rstrip() and line for line in lines), lines
    return lines


@pytest.fixture
def log(monkeypatch) -> io.StringIO:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    return stream


@pytest.fixture
def clock(monkeypatch):
    """tqdm's clock, advanced by hand (seconds); tqdm's monitor thread off (it reads the real clock)."""
    now = [1000.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])
    monkeypatch.setattr(tqdm.std.tqdm, "monitor_interval", 0)
    return now


def test_bar_into_a_log_file_writes_its_first_and_final_state_only(log):
    bar = rt.progress(range(5000), desc="train", file=log)
    assert bar.mininterval == rt.LOG_INTERVAL_S >= 10 and not bar.dynamic_ncols
    list(bar)
    lines = log_lines(log)
    # the opening 0 % line and the closing 100 % line; 5,000 quick steps stay far inside LOG_INTERVAL_S
    assert len(lines) == 2 and "0/5000" in lines[0] and "5000/5000" in lines[-1]


def test_bar_in_a_log_writes_one_line_per_interval_and_the_final_state_once(log, clock):
    """Steps of 10 s: a line at 0 s, then each time LOG_INTERVAL_S (30 s) has passed, each a line of its own; the
    final state (written during the loop at 100 s or not) once."""
    for steps in (10, 9):  # the last step lands on a timed line (90 s) or not (100 s)
        log.seek(0), log.truncate()
        bar = rt.progress(range(steps), desc="censor cnn", file=log)
        for epoch in bar:
            clock[0] += 10
            bar.set_postfix(loss=f"{1 / (epoch + 1):.4f}")
        lines = log_lines(log)
        shown = [0, 3, 6, 9, *([10] if steps == 10 else [])]
        assert [line.split()[3] for line in lines] == [f"{n}/{steps}" for n in shown]
        assert sum(f"{steps}/{steps}" in line for line in lines) == 1
        assert lines[-1].endswith(f"loss={1 / steps:.4f}]")


def test_final_state_written_once_for_a_bar_left_off_screen(log):
    """`leave=False` (bench's phase bar) clears a terminal's bar; a log keeps its final line, once, complete."""
    bar = rt.progress(total=5, desc="bench aae_ssl", leave=False, file=log, mininterval=0, miniters=1)
    for phase in range(5):
        bar.set_postfix_str(f"phase {phase + 1}")
        bar.update()
    bar.close()
    bar.close()  # closing twice writes nothing more
    lines = log_lines(log)
    assert len(lines) == 6 and [line.split()[3] for line in lines] == [f"{n}/5" for n in range(6)]
    assert lines[-1].startswith("bench aae_ssl: 100% 5/5 [") and lines[-1].endswith(", phase 5]")


def test_postfix_in_a_log_is_never_cut(log):
    postfix = {"best_epoch": 17, "train": "0.0843", "test": "0.0912", "note": "x" * 150}
    bar = rt.progress(range(3), desc="censor autoencoder, repetition 3 of 5, lambda 0.1", file=log)
    for _ in bar:
        bar.set_postfix(postfix)
    final = log_lines(log)[-1]
    assert final.endswith(", best_epoch=17, train=0.0843, test=0.0912, note=" + "x" * 150 + "]")
    assert "3/3" in final and "|" not in final  # no bar graphic: the numbers, then the postfix whole
    unknown = io.StringIO()
    list(rt.progress(iter(range(4)), desc="evaluate", postfix="p" * 200, file=unknown))
    assert log_lines(unknown)[-1].endswith("p" * 200 + "]")


def test_nested_bars_in_a_log_move_no_cursor(log):
    outer = rt.progress(range(2), desc="outer", file=log, mininterval=0, miniters=1)
    for _ in outer:
        list(rt.progress(range(3), desc="inner", file=log, mininterval=0, miniters=1))
    lines = log_lines(log)
    assert sum(line.startswith("inner:") for line in lines) == 2 * 4
    assert [line.split()[2] for line in lines if line.startswith("outer:")] == ["0/2", "1/2", "2/2"]


def test_bar_on_a_terminal_redraws_and_a_disabled_bar_writes_nothing(monkeypatch):
    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    bar = rt.progress(range(3), desc="train", file=term)
    assert bar.mininterval == 1.0 and bar.dynamic_ncols
    list(bar)
    assert term.getvalue().startswith("\r") and "|" in term.getvalue()  # tqdm's bar, redrawn in place
    off = io.StringIO()
    monkeypatch.setattr("sys.stderr", off)
    list(rt.progress(range(3), enabled=False, file=off))
    assert off.getvalue() == ""


def test_postfix_updates_in_a_log_file_wait_for_the_next_line(log):
    """A loop that sets its postfix at every validation point writes no extra lines into a log."""
    bar = rt.progress(range(600), desc="train", file=log)
    for it in bar:
        if it % 50 == 0:
            bar.set_postfix(val_error=f"{it / 10:.2f}")
            bar.set_postfix_str(f"step {it}")
            bar.set_description(f"train {it}")
    lines = log_lines(log)
    assert len(lines) == 2 and "600/600" in lines[-1] and "step 550" in lines[-1] and "train 550" in lines[-1]
