"""Alembic's migrations of the Trialdesk schema.

Kept at the project's top (`alembic.ini` points here for developers) and installed as the
package `trialdesk_migrations` (setup.py maps it), so that an installed wheel can run
`trialdesk db upgrade` and a revision can import the frozen code of `frozen/` by the same
name from the source tree and from the wheel.
"""
