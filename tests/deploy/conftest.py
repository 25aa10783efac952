"""Every render of deploy/, made once per session: the gateway's files by its command, then kustomize."""

from __future__ import annotations

import pytest

from tests.deploy.cluster import Rendered
from tests.deploy.render import render_all


@pytest.fixture(scope="session")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    return {
        name: Rendered(objects)
        for name, objects in render_all(tmp_path_factory.mktemp("deploy-render")).items()
    }
