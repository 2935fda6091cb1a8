"""Frozen copies of the application code that revisions run.

A revision runs years after it was written, on databases made by any older release, so
what it does must never change. A revision therefore imports nothing from `app` (a test
holds every file of versions/ to that): the key derivation, sealing, pseudonyms and
column types it needs are copied here, as they were when the revision was written, and
are never edited. Code that changes later (a new seal format, say) gets a new module with
a new date, used by the revisions written after the change; the known-answer tests in
tests/test_frozen_migrations.py fail if a copy's output moves.

What is not frozen is where the server key is found: that is the deployment's setting of
the day, which `server_key.current_server_key()` asks the Alembic environment (env.py) for.
"""
