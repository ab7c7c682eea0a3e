"""Fetches GraphiQL's files from the npm registry into `ASSETS_DIR`, so the IDE works offline.
Each file is taken from its package's tarball and kept only when it has its known hash; files
already here with that hash are left alone. Beside each is its gzipped copy, which the app sends
to browsers that take gzip.

    python -m bloop.graphql.ide_fetch [--dir DIR]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import sys
import tarfile
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

from bloop.graphql.ide import ASSETS, ASSETS_DIR, Asset

Download = Callable[[str], bytes]


class IntegrityError(Exception):
    pass


def integrity_of(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (a fixed https URL)
        body: bytes = response.read()
        return body


def extract(tarball: bytes, asset: Asset) -> bytes:
    """The asset's file from its package's tarball, checked against its hash."""
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        try:
            member = archive.extractfile(f"package/{asset.path}")
        except KeyError:
            member = None
        if member is None:
            raise IntegrityError(f"{asset.tarball} has no file {asset.path}")
        data = member.read()
    if integrity_of(data) != asset.integrity:
        raise IntegrityError(f"{asset.package}@{asset.version}/{asset.path} does not have "
                             f"the hash {asset.integrity}")
    return data


def fetch(target: Path = ASSETS_DIR, assets: Iterable[Asset] = ASSETS.values(),
          get: Download = download) -> list[str]:
    """Writes each missing or changed asset to `target`; the names it wrote."""
    target.mkdir(parents=True, exist_ok=True)
    tarballs: dict[str, bytes] = {}
    written = []
    for asset in assets:
        path = target / asset.name
        data = path.read_bytes() if path.is_file() else b""
        if integrity_of(data) != asset.integrity:
            if asset.tarball not in tarballs:
                tarballs[asset.tarball] = get(asset.tarball)
            data = extract(tarballs[asset.tarball], asset)
            replace(path, data)
            written.append(asset.name)
        zipped = path.with_name(path.name + ".gz")
        if asset.name in written or not zipped.is_file():
            replace(zipped, gzip.compress(data, 9, mtime=0))
    return written


def replace(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, default=ASSETS_DIR)
    args = parser.parse_args(argv)
    try:
        written = fetch(args.dir)
    except (OSError, IntegrityError, tarfile.TarError) as exc:
        print(f"GraphiQL's files were not fetched ({exc}); the IDE at /graphql will load them "
              "from unpkg.com", file=sys.stderr)
        return 1
    print(f"GraphiQL's files are in {args.dir}" + (f" (fetched {', '.join(written)})"
                                                   if written else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
