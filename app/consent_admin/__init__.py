"""Staff side of consent (SPEC 10): consents of participants read, countersigned and
recorded in person; amendments adding a consent version, and the re-consent worklist.

Above `app.participants` in the layers (it reads participants by code), beside
`app.join`; the consent record itself is `app.consent`, below both."""
