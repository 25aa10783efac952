"""`python -m services.gateway [--out FILE | --kubernetes DIR]`: render Envoy's config."""

import argparse
import sys
from pathlib import Path

from services.gateway import kubernetes
from services.gateway.config import render
from services.gateway.settings import GatewaySettings
from services.runtime.settings import ConfigurationError, load_settings

parser = argparse.ArgumentParser(description=__doc__)
target = parser.add_mutually_exclusive_group()
target.add_argument("--out", type=Path, help="write here instead of standard output")
target.add_argument(
    "--kubernetes",
    type=Path,
    metavar="DIR",
    help="write the cluster's envoy.yaml and descriptor.binpb into DIR",
)
arguments = parser.parse_args()
try:
    settings = load_settings(GatewaySettings)
    if arguments.kubernetes:
        for path in kubernetes.write_files(arguments.kubernetes, settings):
            sys.stdout.write(f"{path}\n")
    else:
        config = render(settings)
        if arguments.out:
            arguments.out.write_text(config)
        else:
            sys.stdout.write(config)
except (ConfigurationError, ValueError) as error:
    sys.exit(f"gateway: {error}")
