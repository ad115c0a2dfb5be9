"""`modipick zoo build --pool digits|imagenet-arch|imagenet-sizes [--out DIR]`: build a pool (cached) and print
where it is; `modipick zoo show [DIR]` prints a pool's manifest as a table."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Mapping

from modipick.runtime.config import EnvArgumentParser
from modipick.zoo.builder import POOLS, BuildError, BuildRequest, build_pool, default_out
from modipick.zoo.manifest import ManifestError, read_manifest


def _parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    parser = EnvArgumentParser(prog="modipick zoo", description=__doc__, environ=environ, env_all=True)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build a pool into a TF Serving base path")
    build.add_argument("--pool", required=True, choices=POOLS)
    build.add_argument("--out", type=Path, default=None,
                       help="base path (default $MODIPICK_ZOO_CACHE/<pool> or ~/.cache/modipick/zoo/<pool>)")
    build.add_argument("--models", default="", help="comma-separated subset of the pool's models")
    build.add_argument("--seed", type=int, default=0, help="training seed (digits)")
    build.add_argument("--input-size", type=int, default=None,
                       help="imagenet-arch: square input size for every model (default: each one's native size)")
    build.add_argument("--config-base-path", default=None,
                       help="prefix for base_path in models.config, e.g. /models inside the tensorflow/serving "
                            "container (default: the absolute --out path)")
    build.add_argument("--tflite", action="store_true",
                       help="also export each model as a quantized .tflite under <out>/tflite/ "
                            "(the on-device runner's)")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    show = sub.add_parser("show", help="print a pool's manifest")
    show.add_argument("base", type=Path, nargs="?", default=None)
    show.add_argument("--pool", default="digits", choices=POOLS)
    return parser


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = _parser(environ).parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "show":
        return _show(args.base or default_out(args.pool))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    request = BuildRequest(
        pool=args.pool, out=args.out or default_out(args.pool),
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()), seed=args.seed,
        input_size=args.input_size, force=args.force, config_base_path=args.config_base_path,
        tflite=args.tflite)
    try:
        manifest = build_pool(request)
    except (BuildError, ManifestError) as exc:
        print(f"modipick zoo: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"modipick zoo: cannot write {request.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(request.out.expanduser().resolve())
    return 0 if manifest.models else 1


def _show(base: Path) -> int:
    try:
        manifest = read_manifest(base)
    except ManifestError as exc:
        print(f"modipick zoo: {exc}", file=sys.stderr)
        return 2
    print(f"pool {manifest.pool} at {base}")
    print(f"{'model':<22}{'version':>8}{'accuracy %':>12}  {'source':<9}{'input':<20}{'params':>12}  basis")
    for m in manifest.models:
        shape = "x".join(str(d) for d in m.input_shape[1:])
        print(f"{m.name:<22}{m.version:>8}{m.declared_accuracy:>12.1f}  {m.accuracy_source:<9}"
              f"{m.input_name + ' ' + shape:<20}{m.params:>12,}  {m.accuracy_basis or '-'}")
    return 0
