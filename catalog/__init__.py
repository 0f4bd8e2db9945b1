"""The seed catalog (`catalog.toml`) and the step actions workers execute (`ACTIONS.md`), kept at
the top of the tree and shipped in the wheel as package data."""

from pathlib import Path

CATALOG_FILE = Path(__file__).resolve().parent / "catalog.toml"
