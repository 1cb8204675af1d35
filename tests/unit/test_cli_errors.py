"""The CLI's last line of defence: a daemon that stops answering gives one line and exit 1."""

from __future__ import annotations

import pytest

from engine import cli


def test_a_daemon_that_does_not_answer_is_one_line_not_a_traceback(monkeypatch, capsys) -> None:
    """A client's socket timeout (a daemon stopped with SIGSTOP, or stuck) reached `tix run --wait`
    and `tix sql` as a TimeoutError traceback before; the request itself is covered elsewhere."""
    def silent_daemon(**_: object) -> None:
        raise TimeoutError("timed out")

    monkeypatch.setattr(cli.cli, "main", silent_daemon)
    with pytest.raises(SystemExit) as exited:
        cli.main(["status"])
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tix: error: the daemon did not answer in time (stopped or overloaded?); see "
                   "`tix daemon status` and daemon.log in the workspace"]
