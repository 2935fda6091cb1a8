"""Path and query parameters every router shares, each with its bound."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

SlugPath = Annotated[str, Path(max_length=64, description="study slug")]
CodePath = Annotated[str, Path(max_length=32, description="participant code")]
