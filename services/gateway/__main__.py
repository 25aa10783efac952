"""`python -m services.gateway [--out FILE]`: render Envoy's config from the environment."""

import argparse
import sys
from pathlib import Path

from services.gateway.config import render
from services.gateway.settings import GatewaySettings
from services.runtime.settings import ConfigurationError, load_settings

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", type=Path, help="write here instead of standard output")
arguments = parser.parse_args()
try:
    config = render(load_settings(GatewaySettings))
except (ConfigurationError, ValueError) as error:
    sys.exit(f"gateway: {error}")
if arguments.out:
    arguments.out.write_text(config)
else:
    sys.stdout.write(config)
