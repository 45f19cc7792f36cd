"""`imet-kit recipes`: the shipped training recipes (imet_kit/recipes/*.json)."""

from __future__ import annotations

import argparse
import json

NAME = "recipes"
ORDER = 29
HELP = "list the shipped training recipes (train --recipe NAME), or show one"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show this recipe's settings as JSON")


def run(args: argparse.Namespace) -> int:
    from imet_kit.cli.train import list_recipes
    from imet_kit.config import load_recipe

    if args.name:
        print(json.dumps(load_recipe(args.name), indent=2))
    else:
        print(list_recipes())
    return 0
