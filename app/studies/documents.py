"""Study-definition files: one reader, with one set of bounds, for the console's upload,
the `trialdesk studies create` command and (through the same walk) the API's JSON body.

A file is JSON when its name ends in `.json`, else YAML (safe loading: no tags that make
objects). Either way the document is walked once by `app.api.body.check_value`: how
deep it nests, text PostgreSQL can store, and how many values it holds once YAML's
aliases (`*who5`) are expanded, so a few kilobytes of aliases cannot make billions.
"""

from __future__ import annotations

from typing import Any, NoReturn

import yaml

from app.api.body import MAX_JSON_DEPTH, BadBody, TooManyValues, check_value, parse_json
from app.errors import FieldProblem, InvalidStudyDefinition

MAX_DEFINITION_BYTES = 1024 * 1024
MAX_DOCUMENT_VALUES = 200_000


def read_definition_document(file_name: str, content: bytes) -> Any:
    """The file's document, or InvalidStudyDefinition with one problem (at the document's
    root) saying, in words for its author, why it cannot be read."""
    if len(content) > MAX_DEFINITION_BYTES:
        _refuse("Choose a file of 1 MB or less: this one is larger")
    if not content.strip():
        _refuse("The file is empty: choose the study definition file")
    if file_name.lower().endswith(".json"):
        try:
            document = parse_json(content)
        except BadBody as bad:
            _refuse(f"The file is not valid JSON: {bad}")
    else:
        document = _yaml(content)
    try:
        check_value(document, max_values=MAX_DOCUMENT_VALUES)
    except TooManyValues:
        _refuse("The file is too large once its aliases (*name) are expanded")
    except BadBody as bad:
        _refuse(f"The file cannot be used: {bad}")
    return document


def _yaml(content: bytes) -> Any:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        _refuse("The file is not UTF-8 text: save it as UTF-8 and try again")
    try:
        return yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as error:
        _refuse(_yaml_problem(error))
    except (RecursionError, ValueError):
        _refuse(
            f"The file is not valid YAML: it nests more than {MAX_JSON_DEPTH} levels deep "
            "or has a huge number"
        )


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    what = getattr(error, "problem", None) or "it cannot be read"
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"The file is not valid YAML: {what}{where}"


def _refuse(message: str) -> NoReturn:
    raise InvalidStudyDefinition([FieldProblem((), message)])
