"""Compile ``protos/externalgrpc.proto`` into Python stubs with grpcio-tools.

The generated ``externalgrpc_pb2.py``, ``externalgrpc_pb2.pyi`` and ``externalgrpc_pb2_grpc.py``
are committed (no compiler needed at run time); ``protos/__init__.py`` regenerates them on first
import if they are missing, and a unit test fails when they drift from the .proto. Regenerate
after editing the .proto with::

    python -m koral_ansible.autoscaler._gen
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

PROTO = Path(__file__).resolve().parent / "protos" / "externalgrpc.proto"
#: Directory that holds the ``koral_ansible`` package: the proto's import root, so the generated
#: ``_pb2_grpc`` module imports ``koral_ansible.autoscaler.protos.externalgrpc_pb2``.
ROOT = PROTO.parents[3]
OUTPUTS = ("externalgrpc_pb2.py", "externalgrpc_pb2.pyi", "externalgrpc_pb2_grpc.py")


def missing() -> bool:
    return not all((PROTO.parent / name).exists() for name in OUTPUTS)


def generate(out_root: Path = ROOT) -> list[Path]:
    """Write the stubs under ``out_root`` (default: in place) and return their paths."""
    try:
        from grpc_tools import protoc
    except ImportError:  # pragma: no cover - grpcio-tools is a dev/test dependency
        raise RuntimeError(
            "the externalgrpc stubs are missing and grpcio-tools is not installed; "
            "install grpcio-tools and run: python -m koral_ansible.autoscaler._gen"
        ) from None
    include = resources.files("grpc_tools") / "_proto"
    rel = PROTO.relative_to(ROOT)
    out = str(out_root)
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"-I{include}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            str(rel),
        ]
    )
    if rc != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {rc})")
    return [out_root / rel.parent / name for name in OUTPUTS]


def main() -> int:
    for path in generate():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
