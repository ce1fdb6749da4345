"""The ``edgecnn`` command: parses arguments, calls the library, prints.

Errors a user can cause arrive as :class:`EdgeCNNError` and are printed as one line on stderr
with exit code 2; the library modules are imported inside each command so ``edgecnn --help``
runs without torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from edgecnn import __version__
from edgecnn.errors import EdgeCNNError

EXIT_USER_ERROR = 2


def _parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as a YAML scalar (``0.5`` -> float, ``true`` -> bool)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise EdgeCNNError(f"--option {text!r} must look like key=value, e.g. width_mult=0.5")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise EdgeCNNError(f"--option {text!r}: the value is not a valid scalar") from None


def _model_options(args: argparse.Namespace) -> dict[str, Any]:
    options = dict(_parse_option(o) for o in args.option)
    if args.num_classes is not None:
        options["num_classes"] = args.num_classes
    if args.cifar_stem:
        options["cifar_stem"] = True
    if args.separable:
        options["separable"] = args.separable
    return options


def cmd_models(args: argparse.Namespace) -> int:
    from edgecnn.models import get_spec, list_models
    from edgecnn.models.registry import create_model
    from edgecnn.profile import profile_model
    from edgecnn.profile.summary import human

    rows = []
    for name in list_models(args.family):
        spec = get_spec(name)
        model = create_model(name, device="meta")
        profile = profile_model(model, model.card.resolution)
        rows.append({
            "name": name, "family": spec.family, "params": profile.params, "macs": profile.macs,
            "resolution": model.card.resolution, "num_classes": spec.num_classes,
            "torchvision_compatible": spec.torchvision_name is not None,
            "description": spec.description,
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'name':<22} {'family':<13} {'params':>9} {'MACs':>9} {'res':>4}  description"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['name']:<22} {r['family']:<13} {human(r['params']):>9} {human(r['macs']):>9} "
              f"{r['resolution']:>4}  {r['description']}")
    print(f"{len(rows)} architectures; MACs = conv + linear mult-adds of one image at 'res'.")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from edgecnn.models import create_model
    from edgecnn.profile import format_summary, profile_model

    model = create_model(args.name, device="meta", **_model_options(args))
    resolution = model.card.resolution if args.resolution is None else args.resolution
    profile = profile_model(model, resolution)
    title = f'Model: "{args.name}" at {resolution}x{resolution}'
    print(format_summary(profile, title=title))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgecnn",
        description="CNNs from architecture to a measured edge deployment.",
    )
    parser.add_argument("--version", action="version", version=f"edgecnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", help="list every architecture with params, MACs, resolution")
    p.add_argument("--family", help="only this family (resnet, cifar_resnet, densenet, "
                                    "mobilenet, efficientnet)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("summary", help="a Keras-style per-layer table of one architecture")
    p.add_argument("name", help="architecture name (see `edgecnn models`)")
    p.add_argument("--resolution", type=int, help="input size (default: the model's own)")
    p.add_argument("--num-classes", type=int, help="classifier outputs")
    p.add_argument("--cifar-stem", action="store_true", help="3x3 stride-1 stem for 32x32 input")
    p.add_argument("--separable", choices=["depthwise", "spatial"],
                   help="rewrite full k x k convolutions (but the stem) as separable ones")
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a family option, e.g. width_mult=0.5 or phi=2 (repeatable)")
    p.set_defaults(func=cmd_summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except EdgeCNNError as exc:
        print(f"edgecnn: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
