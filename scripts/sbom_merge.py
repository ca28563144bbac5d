"""One image's CycloneDX SBOM: cyclonedx-py's Python components plus the Debian packages of the
image's dpkg status, with the image itself as the subject. Prints JSON.

    python sbom_merge.py --image junipermarket/orders:TAG --dpkg-status ROOT/var/lib/dpkg/status python.cdx.json

Debian packages get `pkg:deb/debian/<name>@<version>?arch=...&distro=debian-<major>` purls, the
form vulnerability scanners (Grype, Trivy) match against Debian's security tracker.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any


def dpkg_packages(status: str) -> list[dict[str, str]]:
    """Installed packages from a dpkg status file (one stanza per package)."""
    packages = []
    for stanza in status.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1].isspace() or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            packages.append(fields)
    return packages


def debian_component(package: dict[str, str], distro: str) -> dict[str, Any]:
    name, version, arch = package["Package"], package["Version"], package.get("Architecture", "")
    query = urllib.parse.urlencode({"arch": arch, "distro": distro})
    purl = f"pkg:deb/debian/{name}@{urllib.parse.quote(version, safe='')}?{query}"
    component: dict[str, Any] = {
        "type": "library" if name.startswith("lib") else "application",
        "bom-ref": purl,
        "name": name,
        "version": version,
        "purl": purl,
    }
    if "Source" in package:
        source = package["Source"].split()[0]
        component["properties"] = [{"name": "debian:source", "value": source}]
    return component


def workspace_components(site_packages: Path, known: set[str]) -> list[dict[str, Any]]:
    """The image's own packages (installed from the workspace, so not on PyPI: no purl)."""
    found = []
    for metadata in sorted(site_packages.glob("*.dist-info/METADATA")):
        fields = dict(
            line.split(": ", 1) for line in metadata.read_text().splitlines() if ": " in line
        )
        name, version = fields.get("Name", ""), fields.get("Version", "")
        if name and name.lower() not in known and (metadata.parent / "direct_url.json").exists():
            found.append(
                {
                    "type": "application",
                    "bom-ref": f"{name}@{version}",
                    "name": name,
                    "version": version,
                }
            )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--dpkg-status", required=True, type=Path)
    parser.add_argument("python_sbom", type=Path)
    args = parser.parse_args()

    bom: dict[str, Any] = json.loads(args.python_sbom.read_text())
    root = args.dpkg_status.parents[3]
    known = {component["name"].lower() for component in bom.get("components", [])}
    for site_packages in (root / "app" / ".venv" / "lib").glob("python3*/site-packages"):
        bom.setdefault("components", []).extend(workspace_components(site_packages, known))
    major = (root / "etc" / "debian_version").read_text().split(".")[0].strip()
    packages = dpkg_packages(args.dpkg_status.read_text())
    # Scanners take the distribution from this component to match the Debian packages.
    version = (root / "etc" / "debian_version").read_text().strip()
    bom.setdefault("components", []).append(
        {
            "type": "operating-system",
            "bom-ref": f"debian@{version}",
            "name": "debian",
            "version": version,
        }
    )
    bom["components"].extend(debian_component(package, f"debian-{major}") for package in packages)
    name, _, tag = args.image.partition(":")
    metadata = bom.setdefault("metadata", {})
    metadata["component"] = {
        "type": "container",
        "bom-ref": args.image,
        "name": name,
        "version": tag,
    }
    json.dump(bom, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
