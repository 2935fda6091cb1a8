"""The study definition: one document (YAML, JSON or API body), one Pydantic schema.

This module is the document's shape; `studies.validation` adds the rules that span its
parts (codes that must exist, block sizes that fit the ratios, ...)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from app.auth.principal import Role
from app.randomization.blocks import ArmRatio
from app.randomization.plan import Factor, Plan

MAX_BLOCK_SIZE = 120  # a block is re-derived on every allocation; keep it cheap
MAX_RATIO = 20
CODE_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
Code = Annotated[str, Field(pattern=CODE_PATTERN, description="lower-case code: a-z, 0-9, _")]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
Level = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Text = Annotated[str, Field(min_length=1, max_length=2000)]
MAX_DAY = 3660  # ten years: days and windows of a schedule
Number = Annotated[float, Field(ge=-1e12, le=1e12)]


def bounded(most: int, *, least: int = 0) -> Any:
    """A bound on a list in the document: at least `least`, at most `most` entries."""
    return Field(min_length=least, max_length=most)


class Document(BaseModel):
    """Parts of the definition document refuse unknown fields, so typos are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Arm(Document):
    code: Code
    label: Text
    ratio: Annotated[int, Field(ge=1, le=MAX_RATIO)] = 1


class StratificationFactor(Document):
    code: Code
    question: Text | None = Field(
        default=None,
        description="how the public screening page asks for the level (SPEC 10)",
    )
    levels: Annotated[list[Level], bounded(50, least=1)]
    labels: dict[Level, Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default={},
        max_length=50,
        description="words shown for levels, e.g. `{bipolar: Bipolar disorder}`; a level "
        "without one is shown in words made from its code",
    )

    def label(self, level: str) -> str:
        """The words shown for a level: its label, else its code in words."""
        return self.labels.get(level) or words_of(level)


def words_of(code: str) -> str:
    """A code in words, for a page: `bipolar_ii` is `Bipolar ii`."""
    return code.replace("_", " ").capitalize()


class Randomization(Document):
    method: Literal["blocks", "table"] = Field(
        default="blocks",
        description="`blocks`: permuted blocks from the study secret; `table`: uploaded list",
    )
    block_sizes: list[Annotated[int, Field(ge=1, le=MAX_BLOCK_SIZE)]] = Field(
        default=[],
        max_length=10,
        description="each a multiple of the sum of the arm ratios; drawn at random per block "
        "(required with the `blocks` method)",
    )
    stratify_by_site: bool = True
    strata: Annotated[list[StratificationFactor], bounded(10)] = []
    requires_completed: list[Code] = Field(
        default=[], max_length=20, description="timepoints that must be complete first"
    )


class Criterion(Document):
    code: Code
    # The staff wording (the console, CONSORT's criteria list): "Participant is 18 or older".
    text: Text
    # How the public screening page asks it, in the participant's words ("Are you 18 or
    # older?"); `text` when there is none (SPEC 10).
    question: Text | None = Field(
        default=None,
        description="how the public screening page asks the criterion (SPEC 10)",
    )
    must_be: bool = True
    # How a screening that fails it reads in CONSORT and on the participant's record
    # ("No serious mental illness diagnosis"): `text` states the criterion, which
    # would read backwards there.
    fails_text: Text | None = None

    def exclusion_label(self) -> str:
        """The reason a failed screening is shown with."""
        return self.fails_text or f"Did not meet: {self.text}"


class Blinding(Document):
    arm_visible_to: Annotated[list[Role], bounded(len(Role))] = [
        Role.admin,
        Role.unblinded_statistician,
    ]


class Anchor(StrEnum):
    enrollment = "enrollment"
    randomization = "randomization"


class Timepoint(Document):
    code: Code
    anchor: Anchor
    day: Annotated[int, Field(ge=-MAX_DAY, le=MAX_DAY)]
    open_before: Annotated[int, Field(ge=0, le=MAX_DAY)] = 0
    close_after: Annotated[int, Field(ge=0, le=MAX_DAY)]
    instruments: Annotated[list[Code], bounded(50, least=1)]


class Reminders(Document):
    after_days: Annotated[list[Annotated[int, Field(ge=1, le=MAX_DAY)]], bounded(10)] = []


class ItemType(StrEnum):
    choice = "choice"
    multi_choice = "multi_choice"
    integer = "integer"
    number = "number"
    text = "text"
    date = "date"
    boolean = "boolean"


class Option(Document):
    value: (
        Annotated[int, Field(ge=-1_000_000_000, le=1_000_000_000)]
        | Annotated[str, Field(min_length=1, max_length=64)]
    )
    label: Text

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: Any) -> Any:
        if isinstance(data, list | tuple) and len(data) == 2:
            return {"value": data[0], "label": data[1]}
        return data


class Item(Document):
    code: Code
    text: Text
    type: ItemType
    required: bool = False
    options: Annotated[list[Option], bounded(100)] | None = None
    min: Number | None = None
    max: Number | None = None
    export: bool = Field(default=False, description="free text only: include in the blinded export")
    instructions: Text | None = Field(
        default=None, description="a hint under the question: its own stem or time frame"
    )
    section: Text | None = Field(
        default=None, description="a section heading shown before this question"
    )


class ScoreMethod(StrEnum):
    sum = "sum"
    mean = "mean"


class Score(Document):
    code: Code
    method: ScoreMethod
    items: Annotated[list[Code], bounded(200, least=1)]
    reverse: list[Code] = Field(
        default=[], max_length=200, description="items scored (min + max) - value"
    )
    min_answered: Annotated[int, Field(ge=1, le=200)] | None = Field(
        default=None, description="answered items needed for a score; default all"
    )


class Instrument(Document):
    code: Code
    title: Text
    items: Annotated[list[Item], bounded(200, least=1)]
    scores: Annotated[list[Score], bounded(50)] = []
    arms: list[Code] | None = Field(
        default=None,
        max_length=20,
        description="only these arms answer it; it then reveals the arm",
    )
    released_in_blinded_export: bool = False
    participant_title: Text | None = Field(
        default=None, description="the title participants see; default `title`"
    )
    instructions: Text | None = Field(
        default=None,
        description="the validated stem and time frame, shown above the questions",
    )

    def shown_to_participants(self) -> str:
        """The instrument's title on the survey pages."""
        return self.participant_title or self.title


class AlertOperator(StrEnum):
    gt = ">"
    ge = ">="
    lt = "<"
    le = "<="
    eq = "=="
    ne = "!="


class AlertRule(Document):
    code: Code
    text: Text
    item: Code | None = None
    score: Code | None = None
    op: AlertOperator
    value: Number


class Intro(Document):
    """A page before the survey's first part: how long it takes, and (with alert rules)
    that answers about self-harm are read by the team and may bring a call."""

    enabled: bool = True
    minutes: Annotated[int, Field(ge=1, le=240)] = Field(
        description="about how long the whole survey takes, in minutes"
    )
    text: Text | None = Field(default=None, description="a paragraph of the study's own")


SiteCode = Annotated[str, Field(min_length=1, max_length=12)]
Target = Annotated[int, Field(ge=1, le=10_000_000)]


class Recruitment(Document):
    target: Target = Field(description="participants to randomize, in the whole study")
    per_site: dict[SiteCode, Target] = Field(
        default={}, max_length=1000, description="site code → participants to randomize there"
    )


class AppliesTo(StrEnum):
    """Which adverse events a reporting deadline applies to (SPEC 9)."""

    serious = "serious"
    # Serious, unexpected and related (to the intervention or research procedures): an
    # expected hospitalisation in this population starts no IRB clock.
    serious_unexpected_related = "serious_unexpected_related"
    death = "death"
    unanticipated = "unanticipated"  # an unanticipated problem (risks to participants)
    any = "any"


MAX_DEADLINE_HOURS = 24 * 90
MAX_DEADLINE_WORKING_DAYS = 60


class Deadline(Document):
    """A reporting deadline: events it applies to must be reported to `report_to`
    within so many hours, or working days (Monday to Friday in the study's time zone),
    of the day the team became aware of them."""

    code: Code
    applies_to: AppliesTo
    within_hours: Annotated[int, Field(ge=1, le=MAX_DEADLINE_HOURS)] | None = None
    within_working_days: Annotated[int, Field(ge=1, le=MAX_DEADLINE_WORKING_DAYS)] | None = None
    report_to: Annotated[str, Field(min_length=1, max_length=100)] = Field(
        description="whom the report goes to (IRB, DSMB, sponsor, ...)"
    )

    @model_validator(mode="after")
    def _one_clock(self) -> Deadline:
        if (self.within_hours is None) == (self.within_working_days is None):
            raise ValueError("give either within_hours or within_working_days")
        return self


class Safety(Document):
    """Who is emailed about serious adverse events, and the reporting deadlines."""

    contacts: Annotated[list[Annotated[EmailStr, Field(max_length=320)]], bounded(20)] = Field(
        default=[],
        description="emailed at once about a serious adverse event (no health details), "
        "with the safety reviewers who reach the study; with neither, the admins",
    )
    deadlines: Annotated[list[Deadline], bounded(20)] = []

    @model_validator(mode="after")
    def _unique_codes(self) -> Safety:
        codes = [d.code for d in self.deadlines]
        if len(codes) != len(set(codes)):
            raise ValueError("each deadline needs a code of its own")
        return self


LanguageCode = Annotated[
    str, Field(pattern=r"^[a-z]{2,3}$", description="ISO 639-1 code, e.g. `es`")
]
# A participant-visible text of the definition, named by codes rather than positions
# (`instruments.who5.items.who5_1.text`): see `studies.translation`.
TextPath = Annotated[str, Field(min_length=1, max_length=300)]


class Join(Document):
    """The public screening link (`/join/{slug}`, `/join/{slug}/{site}`): SPEC 10."""

    enabled: bool = False
    sites: list[SiteCode] | None = Field(
        default=None,
        max_length=1000,
        description="sites that take people who sign up themselves; default every site",
    )
    verify_before_randomization: bool = Field(
        default=True,
        description="a self-reported diagnosis (eligibility and strata) is held until a "
        "coordinator verifies it; randomization waits for that",
    )
    start_baseline: bool = Field(
        default=True, description="after consent, take the participant straight to baseline"
    )
    min_seconds: Annotated[int, Field(ge=0, le=600)] = Field(
        default=8, description="a screening sent sooner after the page was shown is held"
    )
    per_address_per_hour: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=5, description="sign-ups from one network address in an hour before holding"
    )
    per_study_per_hour: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=200, description="sign-ups in the whole study in an hour before holding"
    )
    ask_date_of_birth: bool = Field(
        default=False, description="ask the date of birth, and ask again at baseline"
    )
    ineligible_text: Text | None = Field(
        default=None,
        description="shown to people who cannot take part: where else to find support",
    )


QuizValue = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
LongText = Annotated[str, Field(min_length=1, max_length=20_000)]


class QuizOption(Document):
    value: QuizValue
    label: Text


class QuizItem(Document):
    """A comprehension question about the consent document."""

    code: Code
    question: Text
    options: Annotated[list[QuizOption], bounded(10, least=2)]
    answer: QuizValue = Field(description="the value of the right option")
    feedback: Text = Field(description="shown after a wrong answer: what the document says")


class ConsentSection(Document):
    heading: Text
    body: LongText = Field(description="Markdown, or HTML (sanitized) with `format: html`")


class ConsentText(Document):
    """A consent document in one language, with its comprehension quiz."""

    title: Text
    format: Literal["markdown", "html"] = "markdown"
    sections: Annotated[list[ConsentSection], bounded(50, least=1)]
    quiz: Annotated[list[QuizItem], bounded(20)] = []


class ConsentDocument(Document):
    """One version of the consent document, in each of the study's languages."""

    version: Annotated[str, Field(min_length=1, max_length=64)]
    texts: dict[LanguageCode, ConsentText] = Field(max_length=10)
    pass_mark: Annotated[int, Field(ge=1, le=20)] | None = Field(
        default=None, description="right answers needed to pass the quiz; default all"
    )

    def quiz_pass_mark(self, language: str) -> int:
        """Right answers needed: `pass_mark`, else every question."""
        return self.pass_mark or len(self.texts[language].quiz)


class ConsentSpec(Document):
    """Electronic consent (SPEC 10): the documents by version, newest last."""

    documents: Annotated[list[ConsentDocument], bounded(20)] = []
    countersign: bool = Field(
        default=False, description="a coordinator countersigns each electronic consent"
    )
    fda_regulated: bool = Field(
        default=False, description="print the 21 CFR 11.50 signature manifest with it"
    )

    def active(self) -> ConsentDocument | None:
        """The version people sign now: the last one (amendments add versions)."""
        return self.documents[-1] if self.documents else None

    def document(self, version: str) -> ConsentDocument | None:
        """The document of this version, if the study has one."""
        return next((d for d in self.documents if d.version == version), None)


ClockTime = Annotated[
    str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="local time, `HH:MM`")
]
# An amount of money: up to 100,000 in the study's currency, to the cent.
Amount = Annotated[Decimal, Field(ge=0, le=100_000, decimal_places=2)]
SmsText = Annotated[str, Field(min_length=1, max_length=320)]


class QuietHours(Document):
    """No text message is sent between `start` and `end`, in the participant's time zone
    (their own, or the study's): one due then waits until `end`."""

    start: ClockTime = "21:00"
    end: ClockTime = "09:00"


class Sms(Document):
    """Text messages (SPEC 11): a second channel for invitations and reminders. What they
    say carries no health information and no study name: only the personal link (and,
    with `first_name`, the person's first name)."""

    enabled: bool = False
    region: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = Field(
        default="US", description="where numbers written without `+` are dialled (ISO 3166)"
    )
    quiet_hours: QuietHours = QuietHours()
    first_name: bool = Field(default=False, description="greet the person by first name")
    invitation: SmsText | None = Field(
        default=None, description="the invitation's words, with `{link}` (and `{first_name}`)"
    )
    reminder: SmsText | None = Field(
        default=None, description="a reminder's words, with `{link}` (and `{first_name}`)"
    )
    crisis_line: SmsText | None = Field(
        default=None,
        description="answered to every text a participant sends, after 'this number is not "
        "watched around the clock': where to get help now (e.g. 'Call or text 988')",
    )
    respond_within_hours: Annotated[int, Field(ge=1, le=720)] = Field(
        default=24, description="how soon a coordinator should answer a participant's text"
    )


class Incentives(Document):
    """What a completed survey earns (SPEC 11): the same rule in every arm."""

    per_timepoint: dict[Code, Amount] = Field(default_factory=dict, max_length=50)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    on_time_bonus: Amount | None = Field(
        default=None, description="added when the survey is completed within `on_time_days`"
    )
    on_time_days: Annotated[int, Field(ge=0, le=MAX_DAY)] = Field(
        default=7, description="days after the window opens that count as on time"
    )
    tax_threshold: Amount | None = Field(
        default=Decimal(600),
        description="a participant paid this much or more in a calendar year is flagged "
        "for tax reporting (US: 600); none: no flag",
    )


class CallRule(Document):
    """When a participant is due for a call on the worklist (SPEC 11)."""

    code: Code
    # `survey_overdue`: a survey still not done `days` after its window opened;
    # `messages_failed`: `days` (as a count) messages to them could not be sent;
    # `no_contact`: no contact logged for `days` days while taking part.
    kind: Literal["survey_overdue", "messages_failed", "no_contact"]
    days: Annotated[int, Field(ge=1, le=MAX_DAY)]


class Retention(Document):
    """Contact-log rules (SPEC 11)."""

    call_rules: Annotated[list[CallRule], bounded(20)] = Field(
        default_factory=lambda: [CallRule(code="overdue_7", kind="survey_overdue", days=7)]
    )


class StudyDefinition(Document):
    """A whole study, as one document; validated completely before anything is stored."""

    slug: Slug
    title: Text
    participant_title: Text | None = Field(
        default=None,
        description="the name participants see (pages, message subjects); never name an illness",
    )
    code_prefix: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,6}$")] | None = Field(
        default=None, description="prefix of participant codes; default the slug's initials"
    )
    arms: Annotated[list[Arm], bounded(20, least=2)]
    randomization: Randomization
    eligibility: Annotated[list[Criterion], bounded(100)] = []
    consent_versions: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]], bounded(20, least=1)
    ]
    blinding: Blinding = Blinding()
    schedule: Annotated[list[Timepoint], bounded(50)] = []
    reminders: Reminders = Reminders()
    instruments: Annotated[list[Instrument], bounded(50)] = []
    alerts: Annotated[list[AlertRule], bounded(50)] = []
    intro: Intro | None = Field(default=None, description="a page before the survey's first part")
    crisis_text: Text | None = Field(
        default=None,
        description="shown beside the questions alert rules watch, and after a safety alert "
        "(phone numbers become links)",
    )
    support_text: Text | None = Field(
        default=None, description="shown on every thank-you page: whom to contact"
    )
    recruitment: Recruitment | None = Field(
        default=None, description="recruitment targets, shown against progress"
    )
    timezone: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        default="UTC", description="IANA time zone of the dates people see (windows)"
    )
    safety: Safety = Safety()
    languages: Annotated[list[LanguageCode], bounded(10, least=1)] = Field(
        default=["en"], description="languages of the participant pages; the first is the default"
    )
    translations: dict[LanguageCode, dict[TextPath, Text]] = Field(
        default={},
        max_length=10,
        description="per language other than the first: path of a text → its translation",
    )
    join: Join = Join()
    consent: ConsentSpec = ConsentSpec()
    sms: Sms = Sms()
    incentives: Incentives | None = None
    retention: Retention = Retention()

    def participant_code_prefix(self) -> str:
        """`code_prefix`, or the initials of the slug's words (`peer-support` → `PS`)."""
        initials = "".join(word[0] for word in self.slug.split("-") if word).upper()[:6]
        return self.code_prefix or initials

    def shown_to_participants(self) -> str:
        """The study's name on pages and messages participants receive."""
        return self.participant_title or self.title

    def instrument(self, code: str) -> Instrument:
        """The instrument with this code."""
        return next(i for i in self.instruments if i.code == code)

    def zone(self) -> ZoneInfo:
        """The study's time zone (validated when the definition was)."""
        return ZoneInfo(self.timezone)

    def arm_label(self, code: str) -> str:
        """The label of the arm with this code."""
        return next(a.label for a in self.arms if a.code == code)

    def plan(self) -> Plan:
        """The randomization plan, as the randomization engine takes it."""
        r = self.randomization
        return Plan(
            method=r.method,
            arms=tuple(ArmRatio(code=a.code, ratio=a.ratio) for a in self.arms),
            block_sizes=tuple(r.block_sizes),
            stratify_by_site=r.stratify_by_site,
            factors=tuple(Factor(f.code, tuple(f.levels)) for f in r.strata),
        )
