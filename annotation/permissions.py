"""The permissions matrix: which per-project role may do what.

MarkIt's access levels (export, progress, statistics, management) map onto actions here; every
endpoint names exactly one action (or is public / self-service) and the server enforces it.
Site admins pass every check.
"""
from __future__ import annotations

import enum

from annotation.models import Role


class Action(str, enum.Enum):
    VIEW_PROJECT = "view_project"
    EDIT_PROJECT = "edit_project"
    VIEW_SCHEMA = "view_schema"
    EDIT_SCHEMA = "edit_schema"
    MANAGE_MEMBERS = "manage_members"
    REGISTER_ITEMS = "register_items"
    LIST_ITEMS = "list_items"
    VIEW_ITEM = "view_item"  # staff; annotators additionally see the items of their own tasks
    SET_GOLD = "set_gold"
    READ = "read"  # take tasks from the queue
    PROGRESS = "progress"
    STATISTICS = "statistics"
    REVIEW = "review"
    EXPORT = "export"
    COMPLETION = "completion"
    RUN_ROUNDS = "run_rounds"  # create a round with its items, close it
    PREDICT = "predict"  # store a model's suggestions for an item (and read them back)


# People's roles; the pipeline's service accounts act in role PIPELINE only where named below
# (register items, run rounds, completion and progress, export), nothing else.
_ALL = frozenset(Role) - {Role.PIPELINE}
_MANAGEMENT = frozenset({Role.OWNER, Role.MANAGER})
_PIPELINE = frozenset({Role.PIPELINE})

MATRIX: dict[Action, frozenset[Role]] = {
    Action.VIEW_PROJECT: _ALL,
    Action.EDIT_PROJECT: _MANAGEMENT,
    Action.VIEW_SCHEMA: _ALL,
    Action.EDIT_SCHEMA: _MANAGEMENT,
    Action.MANAGE_MEMBERS: _MANAGEMENT,
    Action.REGISTER_ITEMS: _MANAGEMENT | {Role.DATA_OWNER} | _PIPELINE,
    Action.LIST_ITEMS: _MANAGEMENT | {Role.DATA_OWNER, Role.REVIEWER},
    Action.VIEW_ITEM: _MANAGEMENT | {Role.DATA_OWNER, Role.REVIEWER},
    Action.SET_GOLD: _MANAGEMENT,
    Action.READ: frozenset({Role.ANNOTATOR, Role.REVIEWER}),
    Action.PROGRESS: _MANAGEMENT | {Role.DATA_OWNER} | _PIPELINE,
    Action.STATISTICS: _MANAGEMENT | {Role.REVIEWER},
    Action.REVIEW: _MANAGEMENT | {Role.REVIEWER},
    Action.EXPORT: _MANAGEMENT | {Role.DATA_OWNER} | _PIPELINE,
    Action.COMPLETION: _MANAGEMENT | {Role.DATA_OWNER} | _PIPELINE,
    Action.RUN_ROUNDS: _MANAGEMENT | {Role.DATA_OWNER} | _PIPELINE,
    Action.PREDICT: _MANAGEMENT | _PIPELINE,
}


def allowed(roles: set[Role], action: Action, *, is_admin: bool = False) -> bool:
    return is_admin or bool(roles & MATRIX[action])


# Reader rank for second-level verification: the verifier must rank above the reader.
RANK = {"junior": 1, "senior": 2, "reviewer": 3}
