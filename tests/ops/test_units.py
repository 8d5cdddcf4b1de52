"""The systemd units in deploy/: `systemd-analyze verify` finds nothing to say about them (skipped with a message
where systemd is not installed), and they keep the properties the operations guide promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.app import SHUTDOWN_WAIT_S

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ("blast-daemon.service", "blast-daemon@.service", "blast-purge.service", "blast-purge.timer")
VENV_BIN = "/opt/blast/venv/bin"


def _properties(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw in (DEPLOY / unit).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.parametrize("unit", ["blast-daemon.service", "blast-daemon@.service"])
def test_the_daemon_units_promise_what_the_guide_says(unit: str) -> None:
    props = _properties(unit)
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "User": "blast",
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ReadWritePaths": "/var/lib/blast",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }
    assert {k: props.get(k, ["(missing)"])[-1] for k in expected} == expected
    assert props["ExecStart"] == [f"{VENV_BIN}/blast-daemon run"]
    assert "WatchdogSec" in props and "EnvironmentFile" not in props  # SIGHUP re-reads the files itself
    # In-flight chunks get 25 s after SIGTERM (daemon.app.SHUTDOWN_WAIT_S): the stop timeout leaves room.
    assert int(props["TimeoutStopSec"][-1]) >= SHUTDOWN_WAIT_S + 10
    env = props["Environment"]
    assert any(e.startswith("BLAST_ENV_FILE=/etc/blast/blast.env:/etc/blast/secrets.env") for e in env)
    if unit.endswith("@.service"):
        assert "BLAST_HTTP_PORT=%i" in env


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd); the units were not verified")
    # verify checks that ExecStart= exists: point the copies at this virtualenv instead of /opt/blast/venv.
    here = str(Path(sys.executable).parent)
    for unit in UNITS:
        text = (DEPLOY / unit).read_text(encoding="utf-8").replace(VENV_BIN, here)
        (tmp_path / unit).write_text(text, encoding="utf-8")
    targets = [
        str(tmp_path / "blast-daemon.service"),
        str(tmp_path / "blast-daemon@8081.service"),  # an instance of the template
        str(tmp_path / "blast-purge.service"),
        str(tmp_path / "blast-purge.timer"),
    ]
    result = subprocess.run(
        [analyze, "verify", "--man=no", *targets], capture_output=True, text=True, timeout=60, check=False
    )
    # verify exits 0 even for unknown keys and bad values; it prints them. Our units must give it nothing to say.
    said = [line for line in (result.stdout + result.stderr).splitlines() if str(tmp_path) in line]
    assert result.returncode == 0 and said == [], result.stdout + result.stderr


def test_systemd_analyze_security_exposure(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; the hardening score was not measured")
    unit = tmp_path / "blast-daemon.service"
    unit.write_text((DEPLOY / "blast-daemon.service").read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "--offline" in result.stderr or "unrecognized option" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline security analysis (systemd < 250)")
    score = [line for line in result.stdout.splitlines() if "Overall exposure level" in line]
    assert score, result.stdout + result.stderr
    value = float(score[0].split(":", 1)[1].split()[0])
    assert value <= 2.0, score[0]  # "OK" on systemd's scale (0 safest, 10 exposed)
