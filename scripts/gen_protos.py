"""Generate the Python API modules in pycontainerd/api/ from the .proto files in protos/.

Run from anywhere: `python scripts/gen_protos.py` (what `make protos` calls). It compiles
every .proto under protos/ with grpc_tools' bundled protoc, writing *_pb2.py, *_pb2.pyi and
*_pb2_grpc.py into the package tree at the repository root (protos/pycontainerd/api/x.proto
becomes pycontainerd/api/x_pb2.py), then makes sure every generated directory is a package.
Earlier output is replaced only after protoc succeeds, so modules of removed .proto
files do not linger and running it twice gives the same tree.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"
GENERATED_ROOT = REPO_ROOT / "pycontainerd" / "api"
GENERATED_PATTERNS = ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py")


def find_protos(proto_root: Path) -> list[Path]:
    """Every .proto file under proto_root, sorted so output order is stable."""
    return sorted(proto_root.rglob("*.proto"))


def remove_generated(generated_root: Path) -> int:
    """Delete earlier protoc output so modules of removed .proto files do not linger."""
    stale = [p for pattern in GENERATED_PATTERNS for p in generated_root.rglob(pattern)]
    for path in stale:
        path.unlink()
    return len(stale)


def run_protoc(proto_root: Path, out_dir: Path, protos: list[Path]) -> None:
    """Compile protos into out_dir; raise SystemExit with protoc's status on failure."""
    well_known_include = str(files("grpc_tools") / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{well_known_include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p.relative_to(proto_root)) for p in protos),
    ]
    status = protoc.main(args)
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}; see its messages above")


def ensure_packages(out_dir: Path, protos: list[Path], proto_root: Path) -> list[Path]:
    """Create a missing __init__.py in every directory that received generated modules.

    Walks up from each generated directory to out_dir so intermediate folders
    (e.g. pycontainerd/api/services/) are packages too. Returns the files created.
    """
    created = []
    for proto in protos:
        directory = out_dir / proto.relative_to(proto_root).parent
        while directory != out_dir:
            init = directory / "__init__.py"
            if not init.exists():
                init.write_text("")
                created.append(init)
            directory = directory.parent
    return created


def main() -> int:
    protos = find_protos(PROTO_ROOT)
    if not protos:
        raise SystemExit(f"no .proto files found under {PROTO_ROOT}")
    # Generate aside first so a protoc error leaves the committed modules untouched.
    with tempfile.TemporaryDirectory(prefix="gen_protos-") as scratch:
        run_protoc(PROTO_ROOT, Path(scratch), protos)
        remove_generated(GENERATED_ROOT)
        shutil.copytree(scratch, REPO_ROOT, dirs_exist_ok=True)
    created = ensure_packages(REPO_ROOT, protos, PROTO_ROOT)
    print(f"generated {len(protos)} proto files; created {len(created)} __init__.py files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
