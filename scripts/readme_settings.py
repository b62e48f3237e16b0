"""Refresh the README's settings table from ``tap-kaleyra-rcs --about --format=markdown``.

python3 scripts/readme_settings.py          # rewrite README.md in place
python3 scripts/readme_settings.py --check  # exit 1 if the README is stale
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def settings_table(about_markdown: str) -> str:
    """The table rows of the ``## Settings`` section of ``--about`` markdown."""
    section = about_markdown.split("## Settings", 1)[1]
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def refreshed(readme: str, table: str) -> str:
    """The README with the text between the markers replaced by ``table``."""
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main() -> int:
    """Rewrite or check the README."""
    tap = Path(sys.executable).parent / "tap-kaleyra-rcs"
    about = subprocess.run(
        [str(tap), "--about", "--format=markdown"], check=True, capture_output=True, text=True
    ).stdout
    current = README.read_text(encoding="utf-8")
    wanted = refreshed(current, settings_table(about))
    if "--check" in sys.argv:
        if wanted != current:
            print("README.md settings table is stale: run python3 scripts/readme_settings.py")
            return 1
        return 0
    README.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
