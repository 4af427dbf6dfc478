"""Subjects, splits and ids of a prepared dataset: group scans, join groups sharing content, split by group.

Scans are grouped by subject (the parent folder, or a regex), and whole groups are assigned to
train/val/test with a seeded shuffle, so no subject sits in two splits.

The manifest (logged to MLflow) names groups and scans by HMAC-SHA256 ids, not by plain hashes of
names or paths: an unkeyed hash lets anyone holding a list of candidate patient names or IDs confirm
who is in the dataset. The key is derived from the *content* of every source file (see
``dataset_key``) rather than kept as a random ``secret.key``, because the dataset hash must stay
reproducible (same inputs + options -> same ids in any ``--out`` and on any machine; a random key
would change them for every fresh folder and a lost key file would change them all): whoever
holds the source files already knows the names, whoever holds only the MLflow store cannot
compute the key. Every file digest is domain-separated, so neither a published
checksum list of the source files nor any logged hash (``hr_sha256`` hashes the written 16-bit
pixels, not file bytes) is a key input.

Groups that share an identical B-scan (same decoded 16-bit pixels, before or after cropping) are
joined before the split (:class:`ContentJoins`), so copies of one image never sit in two splits
(constant B-scans, e.g. blank frames, carry nothing of a subject and are ignored).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from oct_srgan.errors import DataError

_KEY_DOMAIN = b"oct-srgan/id-key/v1\0"
_FILE_DOMAIN = b"oct-srgan/id-key/source-file/v1\0"


def _file_digest(path: Path) -> bytes | None:
    """Domain-separated sha256 of a file's bytes (None if unreadable: read_scan will skip it)."""
    digest = hashlib.sha256(_FILE_DOMAIN)
    try:
        with Path(path).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.digest()


def dataset_key(files: Iterable[Path]) -> bytes:
    """The HMAC key of the ids: a hash over the sorted content digests of every source file.

    Computable only with all source files in hand; it depends on neither the seed nor the output
    folder, so one subject keeps its id in every dataset built from the same files (datasets with
    different seeds can be checked for subject overlap). Never written anywhere.
    """
    digest = hashlib.sha256(_KEY_DOMAIN)
    for d in sorted(d for d in map(_file_digest, files) if d is not None):
        digest.update(d)
    return digest.digest()


def keyed_id(key: bytes, kind: str, text: str, n: int) -> str:
    """``n`` hex digits of HMAC-SHA256(key, kind + text); ``kind`` keeps group and scan ids apart."""
    return hmac.new(key, f"{kind}\0{text}".encode("utf-8"), hashlib.sha256).hexdigest()[:n]


def content_key(u16: np.ndarray) -> str | None:
    """Hash of one 16-bit B-scan (shape included); None for a constant one, which says nothing about a subject."""
    if u16.size == 0 or u16.min() == u16.max():
        return None
    return hashlib.sha256(repr(u16.shape).encode("ascii") + np.ascontiguousarray(u16).tobytes()).hexdigest()


def group_of(path: Path, root: Path, pattern: re.Pattern[str] | None) -> str:
    """The subject a scan belongs to: the regex's first group (or match) on the relative path, else the parent folder."""
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    if pattern is not None:
        m = pattern.search(rel)
        if m is None:
            raise DataError(f"--group-pattern {pattern.pattern!r} does not match a scan path (see sources.csv)")
        return m.group(1) if m.groups() else m.group(0)
    parent = Path(rel).parent.as_posix()
    return parent if parent != "." else root.name


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Checked before any scan is read, since the split itself only happens after reading them all."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(f"split fractions val={val_fraction} test={test_fraction} must be in [0, 1) and sum below 1")


def split_groups(groups: Iterable[str], val_fraction: float, test_fraction: float, seed: int, folds: int = 0,
                 fold: int = 0) -> dict[str, str]:
    """Assign whole groups to splits with a seeded shuffle; val/test get at least one group when there are 3+.

    With ``folds`` > 1 the split is one fold of a leave-subjects-out cross-validation over the
    train+val groups of the plain split: its test groups are left out (``"drop"``), fold ``fold`` of
    the rest is the test split, and ``val_fraction`` of the others (at least one) is validation.
    """
    if folds > 1:
        return _fold_split(split_groups(groups, val_fraction, test_fraction, seed), val_fraction, seed, folds, fold)
    check_fractions(val_fraction, test_fraction)
    names = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[i] for i in order]
    n = len(shuffled)
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    if n >= 3:
        n_test = max(n_test, 1 if test_fraction > 0 else 0)
        n_val = max(n_val, 1 if val_fraction > 0 else 0)
    while n_test + n_val >= n and (n_test or n_val):
        if n_val >= n_test and n_val:
            n_val -= 1
        else:
            n_test -= 1
    out = {}
    for i, g in enumerate(shuffled):
        out[g] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def _fold_split(plain: dict[str, str], val_fraction: float, seed: int, folds: int, fold: int) -> dict[str, str]:
    if not 0 <= fold < folds:
        raise DataError(f"fold {fold} must be in 0..{folds - 1}")
    pool = sorted(g for g, s in plain.items() if s != "test")
    if len(pool) < folds:
        raise DataError(f"{folds} folds need at least {folds} train+val groups, found {len(pool)}")
    order = [pool[i] for i in np.random.default_rng([seed, folds]).permutation(len(pool))]
    held = set(order[fold::folds])
    rest = [g for g in order if g not in held]
    n_val = max(1, round(len(rest) * val_fraction)) if val_fraction > 0 and len(rest) > 1 else 0
    out = {g: "drop" for g, s in plain.items() if s == "test"}
    out.update({g: "test" for g in held})
    out.update({g: "val" if i < n_val else "train" for i, g in enumerate(rest)})
    return out


class _UnionFind:
    """Groups joined by shared content; the root of a set is its smallest name, so splits stay deterministic."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


class ContentJoins:
    """Which groups hold an identical B-scan: they are split as one, and each joined pair is counted."""

    def __init__(self) -> None:
        self._sets = _UnionFind()
        self._owner: dict[str, str] = {}
        self.shared: dict[tuple[str, str], int] = {}

    def add(self, group: str, keys: list[str]) -> None:
        """Record one B-scan of ``group`` by its content keys; join the groups that had one of them first."""
        for other in {self._owner[k] for k in keys if k in self._owner} - {group}:
            self._sets.union(other, group)
            self.shared[(other, group)] = self.shared.get((other, group), 0) + 1
        for k in keys:
            self._owner.setdefault(k, group)

    def split(self, groups: Iterable[str], val_fraction: float, test_fraction: float, seed: int, folds: int = 0,
              fold: int = 0) -> dict[str, str]:
        """:func:`split_groups` over the joined sets: every group gets the split of its set."""
        groups = list(groups)
        root_split = split_groups({self._sets.find(g) for g in groups}, val_fraction, test_fraction, seed, folds, fold)
        return {g: root_split[self._sets.find(g)] for g in groups}
