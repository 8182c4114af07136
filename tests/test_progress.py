"""Progress bars in logs: into a file (DVC's stage logs are not a terminal) a bar writes a line now and then,
not one partial line per redraw."""

from __future__ import annotations

import io
import re

from replab import runtime as rt


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def bar_lines(stream: io.StringIO) -> list[str]:
    return [line for line in re.split(r"[\r\n]", stream.getvalue()) if line.strip()]


def test_bar_into_a_log_file_writes_its_first_and_final_state_only(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    bar = rt.progress(range(5000), desc="train", file=log)
    assert bar.mininterval == rt.LOG_INTERVAL_S >= 10 and not bar.dynamic_ncols
    list(bar)
    lines = bar_lines(log)
    # the opening 0 % line and the closing 100 % line; 5,000 quick steps stay far inside LOG_INTERVAL_S
    assert len(lines) == 2 and "5000/5000" in lines[-1]
    assert all(len(line) <= 100 for line in lines)


def test_bar_on_a_terminal_redraws_and_a_disabled_bar_writes_nothing(monkeypatch):
    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    bar = rt.progress(range(3), desc="train", file=term)
    assert bar.mininterval == 1.0 and bar.dynamic_ncols
    list(bar)
    off = io.StringIO()
    monkeypatch.setattr("sys.stderr", off)
    list(rt.progress(range(3), enabled=False, file=off))
    assert off.getvalue() == ""


def test_postfix_updates_in_a_log_file_wait_for_the_next_line(monkeypatch):
    """A loop that sets its postfix at every validation point writes no extra partial lines into a log."""
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    bar = rt.progress(range(600), desc="train", file=log)
    for it in bar:
        if it % 50 == 0:
            bar.set_postfix(val_error=f"{it / 10:.2f}")
            bar.set_postfix_str(f"step {it}")
            bar.set_description(f"train {it}")
    lines = bar_lines(log)
    assert len(lines) == 2 and "600/600" in lines[-1] and "step 550" in lines[-1] and "train 550" in lines[-1]
