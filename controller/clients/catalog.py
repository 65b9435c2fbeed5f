"""Reads the service catalog (contract/catalog.py) from YAML: the owner's `--catalog` file, or the
one shipped with the package (`controller/catalog.yaml`, which `manifests/catalog.yaml` links to).
A file that cannot be read or is not a catalog is a configuration error: the agent does not start
on half a catalog.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from controller.contract.catalog import Catalog, CatalogError
from controller.core.errors import ConfigError

MAX_BYTES = 1 << 20


def load_catalog(path: Path | None = None) -> Catalog:
    where = str(path) if path else "the shipped catalog"
    try:
        if path is None:
            text = resources.files("controller").joinpath("catalog.yaml").read_text("utf-8")
        else:
            with path.open(encoding="utf-8") as handle:
                text = handle.read(MAX_BYTES + 1)
            if len(text) > MAX_BYTES:
                raise ConfigError(f"catalog {where} is over {MAX_BYTES} bytes")
        return Catalog.from_data(yaml.safe_load(text))
    except (OSError, yaml.YAMLError, CatalogError) as exc:
        raise ConfigError(f"catalog {where}: {exc}") from exc
