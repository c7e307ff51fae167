"""Install every workspace member editable, without dependencies, into the running interpreter.

Hatch installs the root project before it syncs the workspace; the root (the meta-package) names
the members as dependencies, so they must already be present for that first install to resolve.
The members' own dependencies are installed right after by hatch's workspace sync.
"""

import subprocess
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
members = sorted(p.parent for p in (root / "packages").glob("*/pyproject.toml"))
editable = [arg for member in members for arg in ("--editable", str(member))]
subprocess.run(
    [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *editable], check=True
)
