"""Roles, what each may do and which sites each reaches: authorization as data (pure)."""

from __future__ import annotations

from enum import StrEnum

from app.auth.principal import Principal, Role

__all__ = ["Permission", "Principal", "Role", "SiteScope", "has_permission"]


class Permission(StrEnum):
    manage_users = "manage_users"
    manage_studies = "manage_studies"
    read_studies = "read_studies"
    read_participants = "read_participants"
    enroll = "enroll"
    randomize = "randomize"
    withdraw = "withdraw"
    unblind = "unblind"
    read_allocations = "read_allocations"
    read_audit = "read_audit"
    acknowledge_alerts = "acknowledge_alerts"
    enter_data = "enter_data"  # surveys entered for a participant, and their corrections
    export_blinded = "export_blinded"  # the blinded dataset, its codebook and package
    export_unblinded = "export_unblinded"  # with arms (and the study must show them)
    read_reports = "read_reports"  # CONSORT, retention, balance: groups coded if blind
    # SPEC 9, safety:
    record_safety = "record_safety"  # adverse events, their follow-ups, deviations
    read_safety = "read_safety"  # adverse events, deviations and reporting deadlines
    # Causality and expectedness, by a reviewer apart from whoever reported the event
    # (safety reviewers, admins; coordinators report), and only where arms are shown.
    review_safety = "review_safety"
    read_dsmb_open = "read_dsmb_open"  # the DSMB report's open (pooled) part
    # The closed part (by group): never coordinators, even in open-label studies (ICH E9).
    read_dsmb_closed = "read_dsmb_closed"
    # SPEC 10, remote enrollment: sign-ups held for review (accept, reject), consents
    # (read, countersign, record in person) and verifying a self-reported diagnosis.
    review_applicants = "review_applicants"
    manage_consent = "manage_consent"
    # SPEC 11, retention: the contact log, alternate contacts, texting preferences,
    # participants' texts and missed-visit reasons; the incentives ledger (approve, hold,
    # issue) and loading gift cards (admins); loading engagement (roles that see arms).
    contact_participants = "contact_participants"
    manage_incentives = "manage_incentives"
    stock_incentives = "stock_incentives"
    import_engagement = "import_engagement"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission),
    Role.coordinator: frozenset(
        {
            Permission.read_studies,
            Permission.read_participants,
            Permission.enroll,
            Permission.randomize,
            Permission.withdraw,
            Permission.acknowledge_alerts,
            Permission.enter_data,
            Permission.read_reports,
            Permission.record_safety,
            Permission.read_safety,
            Permission.read_dsmb_open,
            Permission.review_applicants,
            Permission.manage_consent,
            Permission.contact_participants,
            Permission.manage_incentives,
        }
    ),
    Role.statistician: frozenset(
        {
            Permission.read_studies,
            Permission.export_blinded,
            Permission.read_reports,
            Permission.read_dsmb_open,
        }
    ),
    Role.unblinded_statistician: frozenset(
        {
            Permission.read_studies,
            Permission.unblind,
            Permission.read_allocations,
            Permission.export_blinded,
            Permission.export_unblinded,
            Permission.read_reports,
            Permission.read_dsmb_open,
            Permission.read_dsmb_closed,
            Permission.import_engagement,
        }
    ),
    Role.safety_reviewer: frozenset(
        {
            Permission.read_studies,
            Permission.read_safety,
            Permission.review_safety,
            Permission.read_dsmb_open,
        }
    ),
    Role.dsmb_member: frozenset(
        {Permission.read_studies, Permission.read_dsmb_open, Permission.read_dsmb_closed}
    ),
}


class SiteScope(StrEnum):
    """How far a role reaches into a study's sites."""

    every_site = "every_site"
    own_sites = "own_sites"  # only the sites the user is assigned to (404 elsewhere)


SITE_SCOPE: dict[Role, SiteScope] = {
    Role.admin: SiteScope.every_site,
    Role.coordinator: SiteScope.own_sites,
    Role.statistician: SiteScope.every_site,  # reads no participant, only blinded data
    Role.unblinded_statistician: SiteScope.every_site,
    Role.safety_reviewer: SiteScope.every_site,  # a study's reviewer sees every site's events
    Role.dsmb_member: SiteScope.every_site,  # reads no participant, only DSMB reports
}


def has_permission(role: Role, permission: Permission) -> bool:
    """Whether the role carries the permission."""
    return permission in ROLE_PERMISSIONS[role]


def is_site_scoped(role: Role) -> bool:
    """Whether the role reaches only the sites its users are assigned to."""
    return SITE_SCOPE[role] is SiteScope.own_sites


def reachable_sites(user: Principal) -> frozenset[int] | None:
    """The ids of the sites the user reaches; None when the role reaches every site."""
    return user.site_ids if is_site_scoped(user.role) else None


def may_access_site(user: Principal, site_id: int) -> bool:
    """Whether the user reaches this site's participants."""
    sites = reachable_sites(user)
    return sites is None or site_id in sites


def may_know_study(user: Principal, study_site_ids: frozenset[int]) -> bool:
    """Whether the user may know the study exists: site-scoped roles only of their studies."""
    sites = reachable_sites(user)
    return sites is None or not sites.isdisjoint(study_site_ids)
