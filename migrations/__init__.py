"""One Alembic history per service that owns a schema, kept at the top of the tree and shipped in
the wheel beside the code. A service's spec names its history with `history(<space>)`."""

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def history(space: str) -> Path:
    """The script location of one service's Alembic history."""
    return _HERE / space
