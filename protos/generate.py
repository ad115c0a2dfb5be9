"""Regenerate the committed Python code for the protos:

- protos/modipick/v1/*.proto: modipick's own API (`modipick.v1`);
- protos/modipick/oip/v2/*.proto: the Open Inference Protocol (wire package `inference`), vendored.

    python protos/generate.py            # write next to the .proto files
    python protos/generate.py --out DIR  # write elsewhere (the drift tests compare the two)

The Open Inference Protocol's messages are built in a descriptor pool of their own. Triton's,
KServe's and MLServer's Python packages register the same `inference.*` names in protobuf's
default pool from files of their own; two files defining one symbol in one pool cannot both load,
so with the default pool modipick could not share a process with any of their clients. The wire
format is the same whichever pool a message class comes from.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent
PACKAGES = ("modipick/v1", "modipick/oip/v2")
PRIVATE_POOL = ("modipick/oip/v2",)
_DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
_OWN_POOL = "_descriptor_pool.DescriptorPool().AddSerializedFile("  # see the module docstring


def generate(out: pathlib.Path) -> list[pathlib.Path]:
    import grpc_tools
    from grpc_tools import protoc

    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    written: list[pathlib.Path] = []
    for package in PACKAGES:
        protos = sorted((ROOT / package).glob("*.proto"))
        args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}",
                f"--grpc_python_out={out}", *map(str, protos)]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        generated = sorted((out / package).glob("*_pb2*.py*"))
        if package in PRIVATE_POOL:
            for path in generated:
                if path.name.endswith("_pb2.py"):
                    text = path.read_text()
                    if _DEFAULT_POOL not in text:
                        raise SystemExit(f"{path.name}: protoc's output changed; cannot move it to its own pool")
                    path.write_text(text.replace(_DEFAULT_POOL, _OWN_POOL))
        written += generated
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT)
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
