"""`imet-kit backbones`: the backbone registry with default size, input convention and size."""

from __future__ import annotations

import argparse
import json

NAME = "backbones"
ORDER = 28
HELP = "list the backbones (--backbone NAME): default size, input range, parameters, weights"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--filter", default="", help="only names containing this text (e.g. resnet)")
    p.add_argument("--count", action="store_true",
                   help="also build the optional-package ones without a known parameter count "
                        "(weights=None, 64 px) to count them")
    p.add_argument("--json", action="store_true", help="print the table as JSON")


def rows(name_filter: str = "", count: bool = False) -> list[dict]:
    """One dict per registered backbone (name order)."""
    from imet_kit.models.backbones import BACKBONES

    out = []
    for name, spec in BACKBONES.items():
        if name_filter and name_filter not in name:
            continue
        params = spec.params
        if params is None and (count or spec.source == "imet_kit"):  # imet_kit's own: tiny
            params = _count(name)
        out.append({"name": name, "default_size": spec.default_size,
                    "input_range": spec.input_range, "params": params, "source": spec.source,
                    "pretrained": list(spec.pretrained), "constructor": spec.constructor})
    return out


def _count(name: str) -> int | None:
    import keras

    from imet_kit.models.backbones import build_backbone

    try:
        n = int(build_backbone(name, (64, 64, 3), None).count_params())
    except ImportError:  # an optional source that is not installed
        return None
    keras.backend.clear_session()
    return n


def run(args: argparse.Namespace) -> int:
    from imet_kit.models.families import HUB_INSTALL, hub_missing

    table = rows(args.filter, args.count)
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    print(f"{'name':<22} {'size':>5} {'input':>8} {'params':>9}  weights")
    for r in table:
        params = f"{r['params'] / 1e6:.1f}M" if r["params"] else "?"
        weights = ", ".join(r["pretrained"]) or "none"
        print(f"{r['name']:<22} {r['default_size']:>5} {r['input_range']:>8} {params:>9}  {weights}"
              f"{'  (' + r['source'] + ')' if r['source'] not in ('keras', 'imet_kit') else ''}")
    hub = "installed" if hub_missing() is None else f"not installed: {HUB_INSTALL}"
    print(f"hub:<preset>: any keras-hub image backbone preset, e.g. hub:resnet_50_imagenet "
          f"(keras-hub {hub})")
    return 0
