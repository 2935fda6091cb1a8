"""The one part of the build pyproject.toml cannot say: which packages go into the wheel.

Everything under app/, and Alembic's migrations/ (at the project's top, where developers
and alembic.ini expect it) as the package `trialdesk_migrations`, so that an installed
Trialdesk can migrate its database and revisions import their frozen code by one name.
Package data (templates, static files, the demo study, the revisions) comes from the one
glob of pyproject.toml.
"""

from setuptools import find_packages, setup

MIGRATIONS = "trialdesk_migrations"

setup(
    packages=[
        *find_packages(include=["app", "app.*"]),
        MIGRATIONS,
        *(f"{MIGRATIONS}.{name}" for name in find_packages(where="migrations")),
    ],
    package_dir={MIGRATIONS: "migrations"},
)
