"""Blinding (pure): the one policy that says what a role may see of arms in a study.

Two things can unblind someone:

- **arms**: the arm of a participant (in an allocation, a randomize answer, a
  participant's record) and the arms of a study. A study lists the roles that may see
  them (`blinding.arm_visible_to`); the blinded statistician is never among them.
  Surveys can tell an arm too: an instrument limited to some arms (`arms:` in the
  definition) makes the survey of its timepoint differ by arm (how many parts, which
  questions), and a timepoint made only of such instruments exists for some arms alone.
- **the design**: the block sizes (known sizes let site staff predict the last slots of
  a block) and, after database lock, the study secret (with it, anyone who knows the
  participants' strata and order re-derives every arm). Only roles that may read the
  allocation ledger see them.

Every answer, page, report, export, message list and count asks `policy_for(role,
definition)` and nothing else decides blinding. For a role that may not see arms, what
the product answers about a participant does not depend on the arm (docs/blinding.md):

- timepoints that only some arms have do not exist for it: not listed in a participant's
  surveys, the worklist, the history, the failed emails or their counts, the reports;
- a survey whose instruments differ by arm has no link for it (`link: null`): the link is
  emailed to the participant instead;
- reissuing or resending a survey that only some arms have answers alike for every arm
  (and acts only where the participant has that survey);
- the reason of an unblinding (written by someone who knows the arm) is not shown;
- a correction (or a save) of answers only to an instrument some arms have, or a save
  that names no answer, is not listed in a participant's history, whatever the timepoint.

Services choose the response schema from the policy: a blinded schema has no field for
what it hides, so nothing can fill it by mistake.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from app.auth.permissions import Permission, has_permission
from app.auth.principal import Role

if TYPE_CHECKING:
    from app.studies.definition import StudyDefinition

# Whatever a study says, the blinded statistician never sees an arm.
NEVER_SEES_ARMS = frozenset({Role.statistician})
BLIND = Role.statistician  # a role blind in every study: the policy of blinded data

UNBLINDED_ACTION = "participant.unblinded"  # its reason was written knowing the arm
CORRECTED_ACTION = "survey.answer_corrected"  # its changes (and reason) name the item
SAVED_ACTION = "survey.saved"


@dataclass(frozen=True)
class View:
    """What one role may see in one study."""

    arms: bool
    design: bool


class GroupMode(StrEnum):
    """How randomized participants are grouped in the counts a role reads."""

    arms = "arms"  # the arms themselves
    coded = "coded"  # blinded codes (G1...): a role that never sees who a participant is
    pooled = "pooled"  # one group: a blind role that sees participants could tie the
    # person just randomized to the group whose count went up


@dataclass(frozen=True)
class Policy:
    """Every blinding answer for one role in one study (build it with `policy_for`)."""

    role: Role
    arms: bool  # real arms (and arm codes and labels) may be shown
    design: bool  # block sizes, and the secret after lock
    reads_participants: bool
    arm_only: frozenset[str]  # timepoints only some arms have
    arm_dependent: frozenset[str]  # timepoints whose survey differs by arm (⊇ arm_only)
    arm_limited_instruments: frozenset[str]
    arm_limited_items: frozenset[str] = frozenset()  # the items of those instruments

    @property
    def blind(self) -> bool:
        """The role may not see arms."""
        return not self.arms

    @property
    def view(self) -> View:
        return View(arms=self.arms, design=self.design)

    @property
    def groups(self) -> GroupMode:
        """How reports group the randomized for this role."""
        if self.arms:
            return GroupMode.arms
        return GroupMode.pooled if self.reads_participants else GroupMode.coded

    @property
    def hidden_timepoints(self) -> frozenset[str]:
        """Timepoints that do not exist for this role (only some arms have them)."""
        return frozenset() if self.arms else self.arm_only

    def shows_timepoint(self, timepoint: str) -> bool:
        """Whether the role sees surveys, messages and history of this timepoint."""
        return timepoint not in self.hidden_timepoints

    def shows_instrument(self, instrument: str) -> bool:
        """Whether the role sees this instrument named for a participant."""
        return self.arms or instrument not in self.arm_limited_instruments

    def shows_link(self, timepoint: str) -> bool:
        """Whether a survey's personal link may be shown or returned to this role (its
        pages would show the arm-limited instruments otherwise)."""
        return self.arms or timepoint not in self.arm_dependent

    def answers_alike(self, timepoint: str) -> bool:
        """Whether acting on this survey (reissue, resend) must answer the same whether or
        not the participant has it: a blind role, a timepoint only some arms have."""
        return not self.arms and timepoint in self.arm_only

    def shows_item(self, item: str) -> bool:
        """Whether the role sees this item (its text, an answer, a correction of it)."""
        return self.arms or item not in self.arm_limited_items

    def shows_history(
        self, action: str, entity_id: str, changes: Mapping[str, object] | None = None
    ) -> bool:
        """Whether an audit record about a participant (`CODE` or `CODE:timepoint`) is
        listed in the participant's history for this role: not one of a timepoint only
        some arms have, nor one about answers (a correction, a save) whose `changes` name
        only items some arms answer (keys starting with `_` are not items: `_mode`,
        `_scores`...), nor a save that names no item (the group's page saves on "Back"
        too). A correction whose changes are not given is not shown to a blind role."""
        _, _, timepoint = entity_id.partition(":")
        if timepoint and not self.shows_timepoint(timepoint):
            return False
        if self.arms:
            return True
        if changes is None:
            return action != CORRECTED_ACTION
        items = {key for key in changes if not key.startswith("_")}
        if not items:  # a save of nothing: only the arms with a page of their own make one
            return action != SAVED_ACTION
        return not items <= self.arm_limited_items

    def shows_message(self, timepoint: str | None) -> bool:
        """Whether a message (an invitation or reminder of that timepoint; None: not about
        a survey) is listed or counted for this role."""
        return timepoint is None or self.shows_timepoint(timepoint)

    def shows_reason(self, action: str) -> bool:
        """Whether the reason of an audit record is shown to this role."""
        return self.arms or action != UNBLINDED_ACTION

    def reads_trail(self) -> bool:
        """Whether the study's audit records are listed for this role: they hold every
        allocation's arm and the answers to arm-limited instruments, and surveys only
        some arms have are recorded for those arms alone, so a role that may not see
        arms does not read them, nor the head (its seq would count the hidden records)."""
        return self.arms

    def may_export_unblinded(self) -> bool:
        """Whether the unblinded export (with arms) is offered to this role."""
        return self.arms and has_permission(self.role, Permission.export_unblinded)


def policy_for(role: Role, definition: StudyDefinition) -> Policy:
    """The blinding policy of the role in the study of this definition."""
    limited = frozenset(i.code for i in definition.instruments if i.arms is not None)
    items = frozenset(
        item.code for i in definition.instruments if i.code in limited for item in i.items
    )
    return Policy(
        role=role,
        arms=may_see_arms(role, definition.blinding.arm_visible_to),
        design=may_see_design(role),
        reads_participants=has_permission(role, Permission.read_participants),
        arm_only=frozenset(
            t.code for t in definition.schedule if limited.issuperset(t.instruments)
        ),
        arm_dependent=frozenset(
            t.code for t in definition.schedule if limited.intersection(t.instruments)
        ),
        arm_limited_instruments=limited,
        arm_limited_items=items,
    )


def may_see_arms(role: Role, arm_visible_to: Iterable[Role]) -> bool:
    """Whether the role may see real arms in a study whose blinding lists `arm_visible_to`
    (the rule under `policy_for`: callers ask the policy)."""
    return role not in NEVER_SEES_ARMS and role in set(arm_visible_to)


def may_see_design(role: Role) -> bool:
    """Whether the role may see block sizes, and the secret once the study is locked."""
    return has_permission(role, Permission.read_allocations)
