"""Ctrl-C that lands inside Python's own machinery (an import, code run by `exec`) is
delivered once that code has returned: never swallowed, and the exit status stays 130."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SELF_INTERRUPT = "import os, signal; os.kill(os.getpid(), signal.SIGINT)\n" \
                 "for _ in range(200_000): pass\n"

CASES = {
    "exec of a string": f"exec({SELF_INTERRUPT!r}, {{}})",
    "an import": "import interrupted_module",
    "a finaliser": textwrap.dedent(f"""
        class Finalised:
            def __del__(self):
                {SELF_INTERRUPT.splitlines()[0]}
                for _ in range(200_000): pass
        Finalised()
    """),
}


@pytest.mark.parametrize("case", CASES)
def test_an_interrupt_inside_the_machinery_is_delivered_after_it(tmp_path: Path,
                                                                 case: str) -> None:
    trigger = CASES[case]
    (tmp_path / "interrupted_module.py").write_text(SELF_INTERRUPT + "COMPLETE = True\n")
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from recharge_cli import interrupts
        interrupts.install()
        try:
        {trigger}
            print("left the machinery", flush=True)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                pass
            print("never interrupted", flush=True)
        except KeyboardInterrupt:
            print("interrupted", "interrupted_module" in sys.modules, flush=True)
            sys.exit(130)
    """).replace("{trigger}", textwrap.indent(trigger.strip(), "    ")))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 130, (done.returncode, done.stdout, done.stderr)
    lines = done.stdout.splitlines()
    assert lines[0] == "left the machinery" and lines[1].startswith("interrupted"), lines
    if case == "an import":
        assert lines[1] == "interrupted True"  # the module finished loading first
    assert "Exception ignored" not in done.stderr


def test_a_reply_left_unread_by_an_interrupt_is_not_taken_for_the_next_one(database) -> None:
    """An interrupt between a Redis command and its reply: the connection that holds the
    reply to come is dropped, so the next command reads its own reply."""
    cache = database.cache()
    key = cache.prefix + "interrupted"
    cache.client.set(key, "stored")

    def interrupted_after_sending() -> None:
        conn = cache.client.connection  # the client's one connection
        conn.send_command("BLPOP", cache.prefix + "empty-list", "0.2")  # replies nil later
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            cache.guard(interrupted_after_sending)
        assert cache.client.get(key) == b"stored"  # not BLPOP's nil
    finally:
        cache.client.delete(key)
        cache.close()
