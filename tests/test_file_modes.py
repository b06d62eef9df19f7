"""Files and folders vlmref writes get the modes the umask gives a plain ``mkdir``/``open`` (not the private
0700/0600 of ``mkdtemp``/``mkstemp``/``NamedTemporaryFile``)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from vlmref.cli.main import main
from vlmref.utils import atomic_write_bytes, chmod_per_umask, current_umask


@pytest.fixture(params=[0o022, 0o027])
def umask(request: pytest.FixtureRequest):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder.parent)): stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}


def test_current_umask_reads_without_changing_it(umask: int) -> None:
    assert current_umask() == umask and os.umask(umask) == umask


def test_atomic_write_and_temporary_trees_follow_the_umask(tmp_path: Path, umask: int) -> None:
    atomic_write_bytes(tmp_path / "a.json", b"{}")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~umask
    atomic_write_bytes(tmp_path / "b.json", b"{}", mode=0o600)  # an explicit mode still wins
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600
    tree = Path(tempfile.mkdtemp(dir=tmp_path))
    (tree / "sub").mkdir(mode=0o700)
    fd, _ = tempfile.mkstemp(dir=tree / "sub")
    os.close(fd)
    assert stat.S_IMODE(tree.stat().st_mode) == 0o700
    chmod_per_umask(tree)
    modes = _modes(tree)
    assert sorted(set(modes.values())) == sorted({0o777 & ~umask, 0o666 & ~umask})
    assert modes[tree.name] == modes[f"{tree.name}/sub"] == 0o777 & ~umask


@pytest.mark.real_tokenizer
def test_create_tiny_folder_and_files_follow_the_umask(tmp_path: Path, tokenizers_root: Path, umask: int,
                                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "tiny"
    assert main(["create-tiny", "--model_type", "qwen-vl-chat", "--out", str(out)]) == 0
    modes = _modes(out)
    assert modes["tiny"] == 0o777 & ~umask and (out / "model.safetensors").is_file()
    assert {k: v for k, v in modes.items() if k != "tiny"} == {k: 0o666 & ~umask for k in modes if k != "tiny"}
