"""The README's promises that a test can hold it to."""

from __future__ import annotations

import re
from pathlib import Path

from draht_router.config import BUILT_IN_ROLES, read_config_file, validate_config

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_is_in_readme_and_valid():
    example = (ROOT / "router.example.yaml").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(
        r"<!-- example-config:start -->\n```yaml\n(.*?)```\n<!-- example-config:end -->",
        readme,
        re.S,
    )
    assert block, "README lost its example-config block"
    assert block.group(1) == example, "README and router.example.yaml drifted apart"
    config = validate_config(read_config_file(ROOT / "router.example.yaml"))
    assert set(BUILT_IN_ROLES) <= set(config.roles)


def test_readme_starts_with_install_demo_and_test_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert "pip install -e '.[test]'" in first_block[0]
    assert first_block[1].startswith("draht-router demo")
    assert "pytest" in first_block[2]
