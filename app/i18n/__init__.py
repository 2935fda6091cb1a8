"""Languages of the participant pages and messages: the fixed texts' message catalogs
(Babel) and the languages a study may list."""
