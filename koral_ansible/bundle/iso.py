"""ISO 9660 images (Joliet + Rock Ridge) of a bundle: write with xorriso, read with pycdlib.

Reading goes through pycdlib (pure Python, streams each file without extracting the ISO);
without pycdlib the ISO is extracted to a temporary directory with ``xorriso -osirrox``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from koral_ansible.errors import OperationError

XORRISO = "xorriso"


def _xorriso() -> str:
    found = shutil.which(XORRISO)
    if not found:
        raise OperationError("xorriso is not installed (Debian package 'xorriso'); cannot write ISO images")
    return found


def make_iso(source: Path, iso_path: Path, volume_id: str) -> Path:
    """Write ``source`` (a directory) as an ISO 9660 image with Joliet and Rock Ridge."""
    iso_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = iso_path.with_name(f".{iso_path.name}.part")
    cmd = [
        _xorriso(), "-as", "mkisofs", "-J", "-joliet-long", "-R",
        "-V", volume_id, "-o", str(tmp), str(source),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        tail = " ".join(proc.stderr.strip().splitlines()[-2:])
        raise OperationError(f"xorriso failed writing {iso_path} (exit {proc.returncode}): {tail}")
    tmp.replace(iso_path)
    return iso_path


def is_iso(path: Path) -> bool:
    """True when ``path`` is a file carrying the ISO 9660 signature at sector 16."""
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        fh.seek(16 * 2048 + 1)
        return fh.read(5) == b"CD001"


class IsoReader(contextlib.AbstractContextManager["IsoReader"]):
    """Read-only access to the files of an ISO (Rock Ridge names, else Joliet)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._iso: Any = None
        self._facility = "rr_path"
        self._extracted: Path | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        try:
            import pycdlib
        except ImportError:
            self._extract()
            return
        iso = pycdlib.PyCdlib()
        try:
            iso.open(str(path))
        except Exception as exc:  # pycdlib raises its own PyCdlibException and friends
            raise OperationError(f"{path} is not a readable ISO 9660 image: {exc}") from exc
        self._iso = iso
        if not iso.has_rock_ridge():
            self._facility = "joliet_path" if iso.has_joliet() else "iso_path"

    def _extract(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="koral-iso-")
        target = Path(self._tmp.name)
        cmd = [_xorriso(), "-osirrox", "on", "-indev", str(self.path), "-extract", "/", str(target)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            self.close()
            raise OperationError(
                f"{self.path} is not a readable ISO 9660 image (xorriso exit {proc.returncode})"
            )
        self._extracted = target

    def files(self) -> list[str]:
        """Relative paths of every regular file, sorted."""
        if self._extracted is not None:
            root = self._extracted
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        out: list[str] = []
        for top, _dirs, names in self._iso.walk(**{self._facility: "/"}):
            for name in names:
                if self._facility == "iso_path":
                    name = name.split(";", 1)[0]
                out.append(f"{top.rstrip('/')}/{name}".lstrip("/"))
        return sorted(out)

    def size(self, rel: str) -> int:
        if self._extracted is not None:
            return (self._extracted / rel).stat().st_size
        return int(self._iso.get_record(**{self._facility: f"/{rel}"}).get_data_length())

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[IO[bytes]]:
        if self._extracted is not None:
            with (self._extracted / rel).open("rb") as fh:
                yield fh
            return
        with self._iso.open_file_from_iso(**{self._facility: f"/{rel}"}) as fh:
            yield fh

    def read_text(self, rel: str) -> str:
        with self.open(rel) as fh:
            return fh.read().decode("utf-8")

    def close(self) -> None:
        if self._iso is not None:
            self._iso.close()
            self._iso = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __exit__(self, *exc: object) -> None:
        self.close()


def list_iso(path: Path) -> list[str]:
    """Relative paths of the files in an ISO."""
    with IsoReader(path) as reader:
        return reader.files()
