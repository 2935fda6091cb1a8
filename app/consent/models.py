"""Consents: one row per consent given, never edited but for a countersignature."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.sealed import SealedBytes, SealedJSON, SealedText


class ConsentMethod(StrEnum):
    electronic = "electronic"
    in_person = "in_person"


class Consent(Base):
    """A consent: which version and language, how it was given, the signature bound to
    the document's SHA-256 with its manifest (printed name, time, meaning), the quiz
    answers, and (electronic) the PDF copy the participant was sent, sealed at rest."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    # Null until an applicant who signed becomes a participant.
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"), index=True)
    applicant_id: Mapped[int | None] = mapped_column(ForeignKey("applicants.id"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    method: Mapped[ConsentMethod] = mapped_column(String(16))
    document_sha256: Mapped[str | None] = mapped_column(String(64))
    signed_name: Mapped[str | None] = mapped_column(SealedText("consents.signed_name"))
    signed_at: Mapped[datetime]
    meaning: Mapped[str] = mapped_column(String(64))
    quiz: Mapped[Any] = mapped_column(SealedJSON("consents.quiz"), nullable=True)
    pdf: Mapped[bytes | None] = mapped_column(SealedBytes("consents.pdf"))
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    # In person: the day consent was taken and the staff member who obtained it.
    obtained_on: Mapped[date | None]
    obtained_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    countersigned_at: Mapped[datetime | None]
    countersigned_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
