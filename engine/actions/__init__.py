"""Action types: one module per type, registered in ``ACTIONS`` by type name.

Adding an action type is adding one module and one entry here.
"""

from __future__ import annotations

from engine.actions.base import Action, StepContext

ACTIONS: dict[str, Action] = {}


def register(type_name: str, action: Action) -> None:
    ACTIONS[type_name] = action


def _load_builtin() -> None:
    from engine.actions import db_write, email, reply, state, webhook
    from engine.actions import set as set_values

    register("webhook", webhook.run)
    register("email", email.run)
    register("db_write", db_write.run)
    register("reply", reply.run)
    register("state", state.run)
    register("set", set_values.run)


_load_builtin()


__all__ = ["ACTIONS", "Action", "StepContext", "register"]
