"""Safety (SPEC 9): adverse events and their versions, reporting deadlines, protocol
deviations. The DSMB reports are in `app.reports`, the data package's resources in
`app.exports`."""
