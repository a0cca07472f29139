"""scripts/search.py on many machines: workers sharing one study on a real PostgreSQL server, a worker that
dies mid-trial, and a password that never shows in a message or on any process's command line.

The server is a throw-away one that these tests start (Debian's `postgresql` package: `initdb` in a
temporary folder, its own port) and stop by its pid; or, where $TEST_POSTGRES_URL names one (the GitHub
workflow's `services: postgres`), that one. Without either the tests are skipped, except where
$COMPACT_MNIST_TEST_ALL is set (.ci/run, the workflow), where a missing server is a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from compact_mnist.webpage import free_port
from conftest import missing

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "pw-" + secrets.token_hex(8)
TINY = ["--", "--epochs", "1", "--train-limit", "1000", "--device", "cpu"]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name != "posix", reason="the test server runs on POSIX")]


def server_folder() -> Path | None:
    """The folder holding PostgreSQL's initdb and postgres programs, if this machine has them."""
    on_path = shutil.which("initdb")
    candidates = ([Path(on_path).resolve().parent] if on_path else []) + sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), reverse=True
    )
    return next((folder for folder in candidates if (folder / "postgres").is_file()), None)


@pytest.fixture(scope="module")
def server_url():
    """postgresql://optuna:PASSWORD@127.0.0.1:PORT/postgres of a server that lives as long as this module."""
    if os.environ.get("TEST_POSTGRES_URL"):
        yield os.environ["TEST_POSTGRES_URL"]
        return
    if os.environ.get("POSTGRES_TESTS") == "skip":
        pytest.skip("POSTGRES_TESTS=skip: this job leaves the server test to another")
    binaries = server_folder()
    if binaries is None:
        missing("no PostgreSQL server here (initdb, postgres); install Debian's postgresql package")
    # The server refuses to run as root: then it runs as the postgres user, in a folder that user owns.
    as_user = {"user": "postgres"} if os.geteuid() == 0 else {}
    folder = Path(tempfile.mkdtemp(prefix="search-postgres-"))
    password_file = folder / "password"
    password_file.write_text(PASSWORD)
    if as_user:
        for path in (folder, password_file):
            shutil.chown(path, "postgres")
    data = folder / "data"
    subprocess.run(
        [binaries / "initdb", "-D", data, "-U", "optuna", "--pwfile", password_file, "--auth", "scram-sha-256"],
        check=True,
        capture_output=True,
        **as_user,
    )
    password_file.unlink()
    port = free_port()
    server = subprocess.Popen(
        [binaries / "postgres", "-D", data, "-p", str(port), "-h", "127.0.0.1", "-k", folder],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "server.log", "w"),
        **as_user,
    )
    url = f"postgresql://optuna:{PASSWORD}@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                optuna.storages.RDBStorage(url)
                break
            except Exception:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the test server did not start: {(folder / 'server.log').read_text()[-500:]}")
                time.sleep(0.3)
        yield url
    finally:
        server.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def search(url: str, *argv: str, **popen) -> subprocess.Popen:
    """A search.py process given the study database the way the README says: in $OPTUNA_STORAGE."""
    env = dict(os.environ, OPTUNA_STORAGE=url, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "scripts/search.py", *argv],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )


def states(url: str, study: str) -> list[str]:
    return [trial.state.name for trial in optuna.load_study(study_name=study, storage=url).trials]


def test_two_machines_share_one_study_and_no_process_shows_the_password(server_url, tmp_path):
    """One machine runs two trials at once (--jobs 2), the other one trial; `ps` is read all the while."""
    flags = ["--study", "two-machines", "--seeds", "1"]
    machines = [
        search(server_url, *flags, "--trials", "2", "--jobs", "2", "--runs", str(tmp_path / "machine-1"), *TINY),
        search(server_url, *flags, "--trials", "1", "--runs", str(tmp_path / "machine-2"), *TINY),
    ]
    snapshots = []
    while any(machine.poll() is None for machine in machines):
        # -ww: whole command lines (macOS's ps cuts them at 79 columns without a terminal).
        snapshots.append(subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout)
        time.sleep(0.2)
    for machine in machines:
        _, stderr = machine.communicate()
        assert machine.returncode == 0, stderr
    # The pruner judges a trial only against 3 complete smaller ones: none of three trials can be pruned.
    assert states(server_url, "two-machines") == ["COMPLETE"] * 3, "nothing failed, was pruned or left running"
    assert any(snapshot.count("scripts/search.py") >= 3 for snapshot in snapshots), "saw the --jobs 2 worker running"
    assert any("scripts/launch.py" in snapshot for snapshot in snapshots), "saw a training run"
    assert not any(PASSWORD in snapshot for snapshot in snapshots)


def test_a_worker_killed_mid_trial_has_its_trial_failed_and_the_study_goes_on(server_url, tmp_path):
    argv = ["--study", "killed", "--seeds", "1", "--trials", "1", "--heartbeat", "1", "--runs", str(tmp_path), *TINY]
    doomed = search(server_url, *argv, start_new_session=True)  # its own process group: it and its training worker
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "killed" / "trial-0" / "seed-0.log").is_file():  # the training worker has started
            assert doomed.poll() is None and time.monotonic() < deadline, doomed.communicate()[1]
            time.sleep(0.1)
    finally:
        os.killpg(doomed.pid, signal.SIGKILL)  # as a machine that dies: no clean-up runs
        doomed.communicate()
    assert states(server_url, "killed") == ["RUNNING"]
    time.sleep(4)  # past the grace period of three missed heartbeats
    survivor = search(server_url, *argv)
    _, stderr = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, stderr
    assert states(server_url, "killed") == ["FAIL", "COMPLETE"]


def test_a_wrong_password_is_one_line_without_the_password(server_url, tmp_path):
    wrong = server_url.replace(PASSWORD, "not-" + PASSWORD)
    probes = [  # both at once
        search(url, "--study", "probe", "--runs", str(tmp_path), *argv)
        for url, argv in ((wrong, ["--trials", "1", *TINY]), (server_url, ["--study", "absent"]))
    ]
    for probe in probes:
        stdout, stderr = probe.communicate(timeout=120)
        assert probe.returncode == 2, stderr
        assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: "), stderr
        assert PASSWORD not in stdout + stderr and "***" in stderr, stderr
