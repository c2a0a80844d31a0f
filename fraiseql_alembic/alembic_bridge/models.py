"""The user's SQLAlchemy models: ``module:attribute`` paths imported into MetaData objects.

A path names a ``MetaData``, a list or tuple of them, or anything with a ``metadata``
attribute that is one (a declarative ``Base``).  The project folder is importable while
the modules load.  Every failure is one :class:`~fraiseql_alembic.errors.ConfigError`
line naming the path, the setting it came from and what to do.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import MetaData

from ..errors import ConfigError
from ..settings import ModelsSetting


def load_metadata(setting: ModelsSetting) -> tuple[MetaData, ...]:
    """Every MetaData the setting's paths name, in order, each once."""
    found: list[MetaData] = []
    with _importable(setting.root):
        for path in setting.paths:
            for metadata in _metadata_of(path, setting.source):
                if not any(metadata is seen for seen in found):
                    found.append(metadata)
    return tuple(found)


def _metadata_of(path: str, source: str) -> list[MetaData]:
    module_name, _, attribute = path.partition(":")
    where = f"{path} ({source})"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            raise ConfigError(
                f"Cannot import the models of {where}: there is no module {err.name!r} in "
                "the project folder or the installed packages; fix the path, or run from "
                "the project folder"
            ) from err
        raise _import_failed(where, err) from err
    except Exception as err:  # the user's module failed while it ran
        raise _import_failed(where, err) from err
    value: object = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ConfigError(
                f"Cannot find the models of {where}: {module_name} has no attribute "
                f"{attribute!r}; point it at a MetaData, e.g. {module_name}:Base.metadata"
            )
        value = getattr(value, part)
    items = list(value) if isinstance(value, list | tuple) else [value]
    metadata = [getattr(item, "metadata", item) for item in items]
    if not metadata or not all(isinstance(item, MetaData) for item in metadata):
        kind = type(value).__name__
        raise ConfigError(
            f"The models of {where} are a {kind}, not a MetaData (or a list of them); "
            f"point it at one, e.g. {module_name}:Base.metadata"
        )
    return [item for item in metadata if isinstance(item, MetaData)]


def _import_failed(where: str, err: BaseException) -> ConfigError:
    detail = " ".join(str(err).split()) or "no message"
    return ConfigError(
        f"Importing the models of {where} failed: {type(err).__name__}: {detail}; fix the "
        "module (`python -c 'import <module>'` shows the traceback) or the setting"
    )


@contextmanager
def _importable(root: Path) -> Iterator[None]:
    """The project folder first on ``sys.path`` while the models import."""
    entry = str(root.resolve())
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)
