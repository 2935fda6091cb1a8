"""Who may work with the contact log, the locator, calls and missed visits."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.principal import Principal

Contacter = Annotated[Principal, Depends(require(Permission.contact_participants))]
AlternateId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the alternate contact's id")]
TimepointPath = Annotated[str, Path(max_length=64, description="timepoint code")]
