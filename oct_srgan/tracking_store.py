"""The tracking store checked before any work, so every way it can fail is one line, not a traceback
after the work: an unknown scheme, a database without its driver, an unreachable server, an SQLite
file that is no database, read-only or on a full disk, and an experiment whose artifacts live in
another store's folder (a copied project). First use of a fresh SQLite store is serialised by a file
lock beside the database, so concurrent runs never race to create its tables or the experiment.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import socket
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from .errors import TrackingError, one_line, raised_as

# Database schemes MLflow stores runs in, and the driver modules SQLAlchemy may use for each.
DB_DRIVERS = {"postgresql": ("psycopg2", "psycopg", "pg8000"), "mysql": ("pymysql", "MySQLdb", "mysql.connector"),
              "mssql": ("pyodbc", "pymssql")}
SERVER_SCHEMES = ("http", "https")
OTHER_SCHEMES = ("sqlite", "databricks", "databricks-uc", "uc")
SQLITE_MAGIC = b"SQLite format 3\x00"
CONNECT_TIMEOUT_S = 5.0
LOCK_TIMEOUT_S = 600.0
_HINT = "use sqlite:///<folder>/mlflow.db, an http(s):// tracking server or a database URI"


def shown(uri: str) -> str:
    """``uri`` without a password, fit to print."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def sqlite_file(uri: str) -> Path | None:
    """The database file of an ``sqlite:///`` URI, resolved (``sqlite:///rel.db`` is relative to the
    working directory), or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    text = uri[len("sqlite:///"):].split("?")[0]
    return Path(text.removeprefix("file:")).resolve()  # ``file:`` is SQLite's URI form (``?mode=ro&uri=true``)


def probe(uri: str, *, write: bool = True) -> None:
    """Refuse in one line a store that cannot work, in seconds and before any work is done."""
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    base = scheme.split("+")[0]
    if base in ("", "file"):
        raise TrackingError(f"tracking store {shown(uri)}: MLflow 3 no longer stores runs in a plain folder; {_HINT}")
    if base in DB_DRIVERS:
        _need_driver(uri, scheme, base)
    elif base in SERVER_SCHEMES:
        _reach(uri)
    elif base == "sqlite":
        _check_sqlite(sqlite_file(uri), uri, write)
    elif base not in OTHER_SCHEMES:
        raise TrackingError(f"tracking store {shown(uri)}: unknown scheme {scheme!r}; {_HINT}")


def _need_driver(uri: str, scheme: str, base: str) -> None:
    named = scheme.split("+", 1)[1] if "+" in scheme else None
    candidates = (named,) if named else DB_DRIVERS[base]
    if not any(importlib.util.find_spec(name.split(".")[0]) for name in candidates):
        raise TrackingError(f"tracking store {shown(uri)}: no {base} driver installed (one of: {', '.join(candidates)})")


def _reach(uri: str) -> None:
    """Open one TCP connection to the server: MLflow itself would retry an unreachable one for minutes."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.hostname:
        raise TrackingError(f"tracking store {shown(uri)}: no host in the URI")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TrackingError(f"tracking server {shown(uri)} is unreachable ({reason}): start it or unset "
                            "MLFLOW_TRACKING_URI") from None


def _check_sqlite(db: Path | None, uri: str, write: bool) -> None:
    if db is None:
        raise TrackingError(f"tracking store {shown(uri)}: an SQLite store needs a file path (sqlite:///path/mlflow.db)")
    if db.is_dir():
        raise TrackingError(f"{db}: the tracking store is a folder, not an SQLite database file")
    if db.exists():
        with db.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
        if head and head != SQLITE_MAGIC:
            raise TrackingError(f"{db}: not an SQLite database (move it away or set MLFLOW_TRACKING_URI)")
        if write and not (os.access(db, os.W_OK) and os.access(db.parent, os.W_OK)):
            raise TrackingError(f"{db}: the tracking store is read-only (make it and its folder writable, or set "
                                "MLFLOW_TRACKING_URI to another store)")


@contextlib.contextmanager
def first_use(uri: str) -> Iterator[None]:
    """Hold a file lock beside an SQLite database for the block (tables and experiment are created in
    it); other stores serialise themselves."""
    db = sqlite_file(uri)
    if db is None:
        yield
        return
    from filelock import FileLock, Timeout

    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(db.with_name(f".{db.name}.lock")), timeout=LOCK_TIMEOUT_S):
            yield
    except Timeout:
        raise TrackingError(f"{db}: another run held the tracking store for {LOCK_TIMEOUT_S:.0f} s") from None


def store_errors(uri: str) -> contextlib.AbstractContextManager[None]:
    """Turn any failure of the store into one ``TrackingError`` line (disk full says which file)."""
    return raised_as(lambda exc: TrackingError(describe(exc, uri)))


def describe(exc: BaseException, uri: str) -> str:
    """One line for a failure of the store: disk full, read-only, or the store's own first line."""
    text = str(exc)
    where = sqlite_file(uri) or shown(uri)
    if "database or disk is full" in text or getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full: {where}"
    if "readonly database" in text or "read-only" in text:
        return f"{where}: the tracking store is read-only"
    if "file is not a database" in text:
        return f"{where}: not an SQLite database"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"tracking store {shown(uri)}: {one_line(Exception(first))}"


def foreign_artifacts(location: str | None, store: Path | None) -> Path | None:
    """The artifacts folder of another local store that an experiment's artifacts go to, or None: a
    project folder copied or moved with its ``mlruns/`` keeps its experiment pointing at the original's."""
    if store is None or not location or not location.startswith("file:"):
        return None
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(location).path))
    return path if path.name == "artifacts" and path != store / "artifacts" else None
