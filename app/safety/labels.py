"""The words people read for the safety codes (pure): one wording per fixed code
(API.md fixes the codes, the labels are ours), used by the console, the exports'
codebooks and the DSMB report alike; the MedDRA system organ classes (the only values
`AEBODSYS` takes); and how an adverse event is named (`AE-n`).

Keys are the codes' string values, so a caller may look up with the enum member or
with the stored string.
"""

from __future__ import annotations

from app.safety.deviation_rules import DeviationCategory
from app.safety.events import (
    ActionTaken,
    Outcome,
    Relatedness,
    Severity,
    VersionKind,
)

SEVERITY: dict[str, str] = {
    Severity.mild.value: "Mild",
    Severity.moderate.value: "Moderate",
    Severity.severe.value: "Severe",
}
# AEREL and AERELPROC alike.
RELATEDNESS: dict[str, str] = {
    Relatedness.not_related.value: "Not related",
    Relatedness.unlikely.value: "Unlikely to be related",
    Relatedness.possible.value: "Possibly related",
    Relatedness.probable.value: "Probably related",
    Relatedness.definite.value: "Definitely related",
}
OUTCOME: dict[str, str] = {
    Outcome.recovered.value: "Recovered",
    Outcome.recovering.value: "Recovering",
    Outcome.not_recovered.value: "Not recovered",
    Outcome.recovered_with_sequelae.value: "Recovered with lasting effects",
    Outcome.fatal.value: "Fatal",
    Outcome.unknown.value: "Unknown",
}
ACTION: dict[str, str] = {
    ActionTaken.none.value: "No action with the intervention",
    ActionTaken.intervention_interrupted.value: "Intervention interrupted",
    ActionTaken.intervention_withdrawn.value: "Intervention stopped for good",
    ActionTaken.other.value: "Other action",
}
CRITERIA: dict[str, str] = {
    "AESDTH": "Resulted in death",
    "AESLIFE": "Life-threatening",
    "AESHOSP": "Required or prolonged a hospital stay",
    "AESDISAB": "Persistent or significant disability",
    "AESCONG": "Congenital anomaly or birth defect",
    "AESMIE": "Other medically important event",
}
VERSION_KIND: dict[str, str] = {
    VersionKind.initial.value: "First report",
    VersionKind.follow_up.value: "Follow-up",
    VersionKind.review.value: "Medical review",
    VersionKind.closure.value: "Closure",
}
DEVIATION_CATEGORY: dict[str, str] = {
    DeviationCategory.ineligible_enrolled.value: "Ineligible participant enrolled",
    DeviationCategory.consent_error.value: "Consent error",
    DeviationCategory.outside_window.value: "Survey done outside its window",
    DeviationCategory.wrong_arm.value: "Wrong arm delivered",
    DeviationCategory.other.value: "Other",
}

# The 27 MedDRA system organ classes (English names, as MedDRA spells them), in
# alphabetical order. `AEBODSYS` takes only these: it is shown to every site's staff (the
# blinded export, the DSMB report's open part), so it may not carry free text.
ORGAN_CLASSES: tuple[str, ...] = (
    "Blood and lymphatic system disorders",
    "Cardiac disorders",
    "Congenital, familial and genetic disorders",
    "Ear and labyrinth disorders",
    "Endocrine disorders",
    "Eye disorders",
    "Gastrointestinal disorders",
    "General disorders and administration site conditions",
    "Hepatobiliary disorders",
    "Immune system disorders",
    "Infections and infestations",
    "Injury, poisoning and procedural complications",
    "Investigations",
    "Metabolism and nutrition disorders",
    "Musculoskeletal and connective tissue disorders",
    "Neoplasms benign, malignant and unspecified (incl cysts and polyps)",
    "Nervous system disorders",
    "Pregnancy, puerperium and perinatal conditions",
    "Product issues",
    "Psychiatric disorders",
    "Renal and urinary disorders",
    "Reproductive system and breast disorders",
    "Respiratory, thoracic and mediastinal disorders",
    "Skin and subcutaneous tissue disorders",
    "Social circumstances",
    "Surgical and medical procedures",
    "Vascular disorders",
)
_ORGAN_CLASS_BY_KEY = {" ".join(name.casefold().split()): name for name in ORGAN_CLASSES}


def organ_class(value: str) -> str | None:
    """The canonical spelling of a system organ class given in any case (and spacing),
    or None when it is not one of the 27."""
    return _ORGAN_CLASS_BY_KEY.get(" ".join(value.casefold().split()))


def event_label(number: int) -> str:
    """How an adverse event is named: `AE-3`, numbered within its study."""
    return f"AE-{number}"
