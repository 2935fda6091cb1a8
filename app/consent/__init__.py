"""Consent (SPEC 10): every consent a participant gave, electronic or in person, with
the document's hash, the signature manifest and a PDF copy sealed at rest."""
