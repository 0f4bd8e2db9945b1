"""The demo account's credentials file: created once, private, read back on later runs."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from nexus.client import demo


def test_the_demo_account_is_created_once_in_a_private_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    created, new = demo.load_or_create(data_dir)
    assert new and created.email.endswith("@example.com") and len(created.password) >= 20
    file = demo.path(data_dir)
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    again, new_again = demo.load_or_create(data_dir)
    assert (again, new_again) == (created, False)


def test_a_readable_file_is_made_private_and_a_broken_one_is_reported(tmp_path: Path) -> None:
    file = demo.path(tmp_path)
    file.write_text(json.dumps({"email": "d@example.com", "password": "p" * 20}))
    file.chmod(0o644)
    credentials, new = demo.load_or_create(tmp_path)
    assert (credentials.email, new) == ("d@example.com", False)
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    file.write_text("{not json")
    with pytest.raises(demo.DemoAccountError, match="delete it"):
        demo.load_or_create(tmp_path)
