"""Staff data entry from the console: a survey's answers entered on the participant's
behalf (a phone interview), and one answer of a completed survey corrected for a reason.

Each page calls the service the API's routes call (`participants.survey_entry`), so what
a role may open, enter and correct is the blinding policy's: a blind role cannot open a
timepoint only some arms have (the page says so, alike for every participant), and the
instruments only some arms answer are left out of its form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from sqlalchemy.orm import Session

from app.api.deps import ReadSessionDep, SessionDep
from app.api.params import CodePath, SlugPath
from app.auth.permissions import Permission
from app.console.deps import CheckedForm, Staff, console_router, needs, send_soon, study_view
from app.console.forms import FormRefused, field_errors, text, validated
from app.console.record import survey_words
from app.console.shared import acting, back
from app.errors import FieldProblem, InvalidInput, SurveyNotFound
from app.participants import survey_entry
from app.participants.survey_schemas import CorrectionIn, StaffAnswersIn
from app.randomization import blinding
from app.studies import service as studies
from app.studies.definition import Item, ItemType
from app.studies.models import Study
from app.surveys import layout
from app.surveys.forms import NO, YES, as_typed, parse_form, shortened
from app.surveys.scheduling import SurveyStatus
from app.surveys.service import timepoint_name
from app.surveys.staff import ENTERABLE, StaffSurvey
from app.web.forms import Form

router = console_router()

Enterer = Annotated[Staff, needs(Permission.enter_data)]
Timepoint = Annotated[str, Path(max_length=64)]
ENTER = "/studies/{slug}/participants/{code}/surveys/{timepoint}/enter"
CORRECT = "/studies/{slug}/participants/{code}/surveys/{timepoint}/correct"

NOTICES = {"saved": "The answers are saved. The survey is complete once you submit it."}
BLIND_ANSWERS = (("yes", "Yes, blind to the arm"), ("no", "No, the assessor knew the arm"))


@router.get(ENTER)
def enter_page(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    timepoint: Timepoint,
    session: ReadSessionDep,
    staff: Enterer,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The survey's questions to enter in an interview, with the answers kept so far."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    survey = _read(session, study, code, timepoint, staff)
    answers = survey.answers() or {}
    kept = survey.instance.mode == "staff" and survey.instance.completed_at is None
    blind = survey.instance.assessor_blind if kept else None
    if blind is None:
        blind = _policy(study, staff).blind
    typed = {
        **as_typed(answers),
        "interviewed_on": [survey.instance.interviewed_on.isoformat()]
        if kept and survey.instance.interviewed_on
        else [],
        "assessor_blind": [YES if blind else NO],
    }
    return _enter_view(request, staff, study, survey, typed, {}, notice=NOTICES.get(done or ""))


@router.post(ENTER)
def enter(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    timepoint: Timepoint,
    session: SessionDep,
    staff: Enterer,
    form: CheckedForm,
) -> Response:
    """Save (keeps) or Submit (completes) the answers entered; every problem beside its
    question and nothing kept if anything is wrong."""
    study = acting(session, slug, staff)
    survey = _read(session, study, code, timepoint, staff)
    items = _items(survey)
    parsed = parse_form(items, form)
    problems = list(parsed.problems)
    on, blind = _interview(form, problems)
    shown = survey.answers() or {}
    answers: dict[str, Any] = {c: None for c in shown if c not in parsed.answers}
    answers |= parsed.answers
    submit = text(form, "action") == "submit"
    typed = {**parsed.typed, **{n: form.get(n, []) for n in ("interviewed_on", "assessor_blind")}}
    try:
        if problems:
            raise InvalidInput(problems)
        body = validated(
            StaffAnswersIn, {"answers": answers, "interviewed_on": on, "assessor_blind": blind}
        )
        survey_entry.enter_answers(
            session,
            study=study,
            code=code,
            timepoint=timepoint,
            body=body,
            actor=staff.user,
            submit=submit,
        )
    except InvalidInput as invalid:
        errors = _answer_errors(invalid.problems, items)
        page = _enter_view(request, staff, study, survey, typed, errors, status_code=422)
        raise FormRefused(page) from None
    participant = survey.instance.participant_code
    if not submit:
        return back(study, f"/participants/{participant}/surveys/{timepoint}/enter", done="saved")
    return send_soon(request, back(study, f"/participants/{participant}", done="entered"))


@router.get(CORRECT)
def correct_page(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    timepoint: Timepoint,
    session: ReadSessionDep,
    staff: Enterer,
    item: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """Choose an answer of the completed survey to correct; then its current value, the
    new one and the reason."""
    study = studies.get_study(session, slug=slug, user=staff.user)
    survey = _read(session, study, code, timepoint, staff)
    return _correct_view(request, staff, study, survey, item, {}, {})


@router.post(CORRECT)
def correct(
    request: Request,
    slug: SlugPath,
    code: CodePath,
    timepoint: Timepoint,
    session: SessionDep,
    staff: Enterer,
    form: CheckedForm,
) -> Response:
    """Correct one answer for a reason (the original is kept); problems beside fields."""
    study = acting(session, slug, staff)
    survey = _read(session, study, code, timepoint, staff)
    chosen = text(form, "item", 64)
    item = next((i for i in _items(survey) if i.code == chosen), None)
    typed = {"value": form.get("value", []), "reason": [text(form, "reason")]}
    problems: list[FieldProblem] = []
    value: Any = None
    if item is None:
        problems.append(FieldProblem(("item",), "Choose the question to correct"))
    else:
        parsed = parse_form([item], {item.code: form.get("value", [])})
        problems += [FieldProblem(("value",), p.msg) for p in parsed.problems]
        value = parsed.answers.get(item.code)
    if not typed["reason"][0]:
        problems.append(FieldProblem(("reason",), "Enter why the answer is corrected"))
    try:
        if problems:
            raise InvalidInput(problems)
        body = validated(
            CorrectionIn, {"item": chosen, "value": value, "reason": typed["reason"][0]}
        )
        survey_entry.correct_answer(
            session, study=study, code=code, timepoint=timepoint, body=body, actor=staff.user
        )
    except InvalidInput as invalid:
        errors = field_errors(invalid.problems, fields=("item", "value", "reason"))
        page = _correct_view(request, staff, study, survey, chosen, typed, errors, status=422)
        raise FormRefused(page) from None
    participant = survey.instance.participant_code
    return send_soon(request, back(study, f"/participants/{participant}", done="corrected"))


def _policy(study: Study, staff: Staff) -> blinding.Policy:
    return blinding.policy_for(staff.user.role, studies.definition_of(study))


def _read(session: Session, study: Study, code: str, timepoint: str, staff: Staff) -> StaffSurvey:
    """The survey as the caller may read it; a page that says why it cannot be opened
    (404), in the same words for every participant and arm."""
    try:
        return survey_entry.read_survey(
            session, study=study, code=code, timepoint=timepoint, user=staff.user
        )
    except SurveyNotFound:
        name = timepoint_name(timepoint)
        if not _policy(study, staff).shows_timepoint(timepoint):
            raise SurveyNotFound(
                f"the {name} is answered only in some arms, and your role is blind to arms: "
                "it cannot be opened, entered or corrected by you. Ask a colleague who may "
                "see arms."
            ) from None
        raise SurveyNotFound(f"participant {code} has no {name}") from None


def _items(survey: StaffSurvey) -> list[Item]:
    return [item for instrument in survey.instruments for item in instrument.items]


def _interview(form: Form, problems: list[FieldProblem]) -> tuple[str | None, bool | None]:
    """The interview's date (as the API takes it) and whether the assessor was blind."""
    day = text(form, "interviewed_on", 32)
    if day:
        try:
            date.fromisoformat(day)
        except ValueError:
            words = "Enter the interview's date as a day, month and year, like 2026-12-07"
            problems.append(FieldProblem(("interviewed_on",), words))
    blind = text(form, "assessor_blind", 8)
    if blind not in ("", YES, NO):
        problems.append(FieldProblem(("assessor_blind",), "Choose yes or no"))
    return day or None, None if blind not in (YES, NO) else blind == YES


def _answer_errors(problems: Sequence[FieldProblem], items: Sequence[Item]) -> dict[str, str]:
    """Each problem beside its question, naming the question (as the survey pages do)."""
    fields = ["interviewed_on", "assessor_blind", *(item.code for item in items)]
    aliases = {f"answers-{item.code}": item.code for item in items}
    errors = field_errors(problems, fields=fields, aliases=aliases)
    texts = {item.code: item.text for item in items}
    return {
        field: f"{message.rstrip('.')} for “{shortened(texts[field])}”"
        if field in texts
        else message
        for field, message in errors.items()
    }


def answer_words(item: Item, value: Any) -> str:
    """A stored answer as a person reads it: an option's label, yes or no."""
    if value is None:
        return "No answer"
    labels = {str(o.value): o.label for o in item.options or []}
    if item.type is ItemType.boolean:
        return "Yes" if value else "No"
    if isinstance(value, list):
        return "; ".join(labels.get(str(v), str(v)) for v in value) or "No answer"
    return labels.get(str(value), str(value))


def _common(study: Study, staff: Staff, survey: StaffSurvey) -> dict[str, Any]:
    timepoint = survey.instance.timepoint
    policy = _policy(study, staff)
    return {
        "participant_code": survey.instance.participant_code,
        "timepoint": timepoint,
        "name": timepoint_name(timepoint),
        "survey": survey,
        "status": survey.status.value,
        "status_words": survey_words(survey, studies.definition_of(study).zone()),
        # Instruments only some arms answer are left out for a blind role (alike for all).
        "left_out": policy.blind and timepoint in policy.arm_dependent,
    }


def _enter_view(
    request: Request,
    staff: Staff,
    study: Study,
    survey: StaffSurvey,
    typed: Mapping[str, list[str]],
    errors: dict[str, str],
    *,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    items = _items(survey)
    context = {
        **_common(study, staff, survey),
        "enterable": survey.status in ENTERABLE,
        "completed": survey.status is SurveyStatus.completed,
        "typed": typed,
        "errors": errors,
        "notice": notice,
        "hints": {item.code: hint for item in items if (hint := layout.hints(item))},
        "blind_answers": BLIND_ANSWERS,
    }
    return study_view(
        request, staff, study, "console/survey_enter.html", context, status_code=status_code
    )


def _correct_view(
    request: Request,
    staff: Staff,
    study: Study,
    survey: StaffSurvey,
    chosen: str,
    typed: Mapping[str, list[str]],
    errors: dict[str, str],
    *,
    status: int = 200,
) -> Response:
    items = _items(survey)
    item = next((i for i in items if i.code == chosen), None)
    current = (survey.answers() or {}).get(item.code) if item else None
    context = {
        **_common(study, staff, survey),
        "items": [(i.code, f"{i.text} ({i.code})") for i in items],
        "item": item,
        "current": answer_words(item, current) if item else None,
        "typed": {"value": as_typed({"v": current}).get("v", []), **typed},
        "errors": errors,
        "hint": layout.hints(item) if item else [],
    }
    return study_view(
        request, staff, study, "console/survey_correct.html", context, status_code=status
    )
