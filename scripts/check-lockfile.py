"""Fails when package-lock.json lacks an entry for some package's optional
dependency: `npm ci` refuses such a lockfile on a clean machine. It happens
here when the registry mirror lacks a platform binary of the newest version
(fix: pin the parent to a version whose binaries all exist, in `overrides`)."""
import json
import sys

packages = json.load(open("package-lock.json"))["packages"]
missing = [
    (path, dep)
    for path, info in packages.items()
    for dep in (info.get("optionalDependencies") or {})
    if not any(key.endswith("node_modules/" + dep) for key in packages)
]
for path, dep in missing:
    print(f"package-lock.json: {path or 'root'} has optional dependency {dep} with no entry", file=sys.stderr)
sys.exit(1 if missing else 0)
