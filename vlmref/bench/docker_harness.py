"""``nox -s bench-a100``: build the repo's CUDA Dockerfile, run ``vlmref bench --documented`` in it on every GPU of
the host, keep the results under ``.benchmarks/a100/`` and compare them with the seeds' documented footprints.

Needs the docker SDK (``pip install 'vlmref[bench]'``) and a Docker engine with the NVIDIA container toolkit (the
container asks for ``--gpus all`` through ``device_requests``). The image runs as uid 1001 (``USER 1001`` in the
Dockerfile, no entrypoint), so the host's output folder is made writable for it; the image is built without ``.git``,
so the host's commit goes in as ``$VLMREF_GIT_COMMIT``.

::

    python -m vlmref.bench.docker_harness [--tolerance 0.10] [--build-arg TORCH_INDEX=...] [-- --only KEY ...]

>>> image_tag("/nonexistent-repo").startswith("vlmref-bench:")
True
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import load_artifact, write_json_atomic
from .env import GIT_COMMIT_ENV, REPO_ROOT, git_commit
from .gate import DOCUMENTED_TOLERANCE, compare_documented

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
CONTAINER_OUT = "/out"
NEEDS = ("a GPU host with Docker Engine and the NVIDIA container toolkit (nvidia-ctk runtime configure "
         "--runtime=docker); set DOCKER_HOST when the engine is not on the local socket")


class DockerHarnessError(RuntimeError):
    """The benchmark could not be run in docker (the subclass says why)."""


class DockerSdkMissing(DockerHarnessError):
    pass


class DockerEngineUnreachable(DockerHarnessError):
    pass


class GpuRuntimeUnavailable(DockerHarnessError):
    pass


class ImageBuildFailed(DockerHarnessError):
    pass


class BenchContainerFailed(DockerHarnessError):
    pass


def import_docker() -> Any:
    try:
        import docker
    except ImportError as err:
        raise DockerSdkMissing("the docker SDK for Python is not installed: pip install 'vlmref[bench]' "
                               f"(or pip install 'docker>=7'); nox -s bench-a100 installs it ({err})") from err
    return docker


def docker_host() -> str:
    """The engine address docker.from_env() tries, as the user would recognise it."""
    host = os.environ.get("DOCKER_HOST")
    return f"DOCKER_HOST={host}" if host else f"{DEFAULT_SOCKET} (the default; DOCKER_HOST is not set)"


def connect() -> Any:
    """A docker client that has answered a ping (``DockerEngineUnreachable`` naming the address tried)."""
    docker = import_docker()
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as err:
        raise DockerEngineUnreachable(f"no Docker engine reachable at {docker_host()}: {err}\n"
                                      f"nox -s bench-a100 needs {NEEDS}") from err
    return client


def image_tag(repo: str | os.PathLike = REPO_ROOT) -> str:
    """``vlmref-bench:<git short sha>``, ``vlmref-bench:dev`` outside a git checkout."""
    return f"vlmref-bench:{git_commit(repo, short=True) or 'dev'}"


def build_image(client: Any, repo: str | os.PathLike, tag: str, log: Callable[[str], None],
                buildargs: dict[str, str] | None = None) -> None:
    """``docker build -t tag repo`` with the build output streamed to ``log``."""
    log(f"building {tag} from {Path(repo) / 'Dockerfile'}")
    for chunk in client.api.build(path=str(repo), tag=tag, rm=True, decode=True, buildargs=buildargs or {}):
        if "stream" in chunk and chunk["stream"].strip():
            log(chunk["stream"].rstrip("\n"))
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message", chunk["error"])
            raise ImageBuildFailed(f"docker build of {tag} failed: {detail}")


def gpu_device_requests(docker: Any) -> list[Any]:
    """``--gpus all``."""
    return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]


def run_bench_container(client: Any, tag: str, out_dir: str | os.PathLike, log: Callable[[str], None],
                        bench_args: Sequence[str] = (), commit: str | None = None) -> Path:
    """Run ``vlmref bench --documented --out /out/bench.json`` on all GPUs, stream its output, return the host path
    of the results file. The container is removed afterwards."""
    docker = import_docker()
    out_dir = Path(out_dir)
    os.chmod(out_dir, 0o777)  # the image's user is uid 1001
    command = ["vlmref", "bench", "--documented", "--out", f"{CONTAINER_OUT}/bench.json", *bench_args]
    log(f"running {tag}: {' '.join(command)}")
    try:
        container = client.containers.run(
            tag, command=command, detach=True, device_requests=gpu_device_requests(docker),
            volumes={str(out_dir): {"bind": CONTAINER_OUT, "mode": "rw"}},
            environment={GIT_COMMIT_ENV: commit} if commit else {})
    except docker.errors.APIError as err:
        text = str(err)
        if any(s in text.lower() for s in ("device driver", "capabilities", "nvidia", "gpu")):
            raise GpuRuntimeUnavailable(f"the Docker engine at {docker_host()} cannot give the container GPUs: "
                                        f"{text}\nnox -s bench-a100 needs {NEEDS}") from err
        raise BenchContainerFailed(f"docker could not start {tag}: {text}") from err
    try:
        for chunk in container.logs(stream=True, follow=True):
            log(chunk.decode(errors="replace").rstrip("\n"))
        status = container.wait()
    finally:
        container.remove(force=True)
    code = status.get("StatusCode", -1)
    result = out_dir / "bench.json"
    # exit 1 = some scenario failed with an error: the file still holds every result, the comparison reports it
    if code not in (0, 1) or not result.exists():
        raise BenchContainerFailed(f"vlmref bench exited with {code} in {tag}"
                                   + ("" if result.exists() else f"; no {CONTAINER_OUT}/bench.json was written"))
    return result


def bench_a100(repo: str | os.PathLike = REPO_ROOT, tolerance: float = DOCUMENTED_TOLERANCE,
               bench_args: Sequence[str] = (), buildargs: dict[str, str] | None = None,
               log: Callable[[str], None] = print, client: Any = None) -> int:
    """Build, run, copy to ``.benchmarks/a100/bench-<sha>.json``, compare with the documented figures: 0 when every
    measured footprint is within ``tolerance``, 1 otherwise. Raises ``DockerHarnessError`` subclasses. ``client``:
    a docker client (default: :func:`connect`)."""
    repo = Path(repo)
    client = connect() if client is None else client
    sha = git_commit(repo, short=True) or "dev"
    tag = f"vlmref-bench:{sha}"
    build_image(client, repo, tag, log, buildargs)
    with tempfile.TemporaryDirectory(prefix="vlmref-bench-") as tmp:
        artifact = load_artifact(run_bench_container(client, tag, tmp, log, bench_args, git_commit(repo)))
    dest = write_json_atomic(repo / ".benchmarks" / "a100" / f"bench-{sha}.json", artifact)
    log(f"results: {dest}")
    comparison = compare_documented(artifact, tolerance)
    log(comparison.table())
    return 0 if comparison.ok else 1


def _build_arg(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vlmref.bench.docker_harness", description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", default=str(REPO_ROOT), help="the checkout whose Dockerfile is built")
    p.add_argument("--tolerance", type=float, default=DOCUMENTED_TOLERANCE)
    p.add_argument("--build-arg", type=_build_arg, action="append", default=[], metavar="KEY=VALUE",
                   help="a Dockerfile ARG, e.g. TORCH_INDEX=https://download.pytorch.org/whl/cu126")
    p.add_argument("bench_args", nargs="*", help="after --: more `vlmref bench` flags (e.g. --only KEY)")
    args = p.parse_args(argv)
    buildargs = dict(args.build_arg)
    try:
        return bench_a100(args.repo, args.tolerance, args.bench_args, buildargs)
    except DockerHarnessError as err:
        print(f"error ({type(err).__name__}): {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
