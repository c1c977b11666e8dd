"""Loading a v2 function app and indexing its functions, as the host does with worker indexing.

The app is a module (by name, by file path, or given) holding one ``func.FunctionApp``; each function's trigger
binding becomes a :class:`Trigger` with its ``%NAME%`` references resolved from the app settings.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger("emulators.functions_host")

DEFAULT_CONNECTION = "AzureWebJobsServiceBus"
#: The v2 model's default: ``func.FunctionApp(http_auth_level=...)`` is FUNCTION unless the app says otherwise.
DEFAULT_AUTH_LEVEL = "function"

_SETTING_REF = re.compile(r"%([^%]+)%")
# FunctionApp.get_functions() refuses to run twice on one app (it sees its own names as duplicates).
_INDEXED: dict[int, tuple[Any, list[Any]]] = {}


@dataclass
class Trigger:
    """One function as the host knows it: its trigger binding, and what the runner needs from it."""

    name: str
    kind: str  # "serviceBus" | "timer" | "http"
    arg_name: str
    user_function: Callable[..., Any]
    binding: dict[str, Any]
    queue: str | None = None
    topic: str | None = None
    subscription: str | None = None
    connection: str = DEFAULT_CONNECTION
    many: bool = False
    auto_complete: bool | None = None
    route: str | None = None
    methods: tuple[str, ...] = field(default_factory=tuple)  # empty: every method
    auth_level: str = DEFAULT_AUTH_LEVEL

    @property
    def entity(self) -> str:
        if self.queue:
            return self.queue
        return f"{self.topic}/Subscriptions/{self.subscription}"


def resolve_setting_refs(value: str | None, setting: Callable[[str], str | None]) -> str | None:
    """Replace ``%NAME%`` with the app setting, as the host does for binding expressions."""
    if value is None:
        return None

    def sub(m: re.Match[str]) -> str:
        found = setting(m[1])
        if found is None:
            raise KeyError(f"app setting {m[1]!r} (referenced as %{m[1]}%) is not set")
        return found

    return _SETTING_REF.sub(sub, value)


def load_app(app_module_or_path: str | os.PathLike[str] | ModuleType, *, reload: bool = True) -> tuple[ModuleType, Any]:
    """Import the app module (by name, by file path, or given) and return it with its FunctionApp.

    With ``reload`` an already imported module is executed again, so its module-level code sees the current
    settings (each test may point it at another Service Bus)."""
    if isinstance(app_module_or_path, ModuleType):
        module = app_module_or_path
    else:
        target = os.fspath(app_module_or_path)
        if target.endswith(".py") or os.sep in target or "/" in target:
            path = Path(target).resolve()
            if path.is_dir():
                path = path / "function_app.py"
            # The app's directory is the script root, as with the Functions host.
            root = str(path.parent)
            if root not in sys.path:
                sys.path.insert(0, root)
            mod_name = path.stem
            existing = sys.modules.get(mod_name)
            if not reload and existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == path:
                module = existing
            else:
                spec = importlib.util.spec_from_file_location(mod_name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[mod_name] = module
                spec.loader.exec_module(module)
        elif reload and target in sys.modules:
            module = importlib.reload(sys.modules[target])
        else:
            module = importlib.import_module(target)
    from azure.functions.decorators.function_app import FunctionRegister

    app = getattr(module, "app", None)
    if not isinstance(app, FunctionRegister):
        apps = [v for v in vars(module).values() if isinstance(v, FunctionRegister)]
        if len(apps) != 1:
            raise ValueError(f"{module.__name__} must define exactly one func.FunctionApp (found {len(apps)})")
        app = apps[0]
    return module, app


def _plain(value: Any) -> str:
    """An enum of the decorators (``AuthLevel.FUNCTION``, ``HttpMethod.GET``) or the string of worker metadata."""
    return str(getattr(value, "value", value))


def _functions_of(app: Any) -> Iterable[Any]:
    functions = _INDEXED.get(id(app))
    if functions is None or functions[0] is not app:
        functions = (app, list(app.get_functions()))
        _INDEXED[id(app)] = functions
    return functions[1]


def index_functions(app: Any, setting: Callable[[str], str | None]) -> dict[str, Trigger]:
    """The app's functions by name, for the trigger kinds the runner serves (others are logged and left out).

    ``app`` is a ``func.FunctionApp`` or anything with the same ``get_functions()`` shape (real-worker mode
    indexes from the worker's function metadata)."""
    triggers: dict[str, Trigger] = {}
    for fn in _functions_of(app):
        trigger = fn.get_trigger()
        if trigger is None:
            continue
        binding = dict(trigger.get_dict_repr().items())
        kind = str(binding.get("type"))
        name = fn.get_function_name()
        user_function = fn.get_user_function()
        arg_name = str(binding.get("name"))
        if kind == "serviceBusTrigger":
            triggers[name] = Trigger(
                name=name,
                kind="serviceBus",
                arg_name=arg_name,
                user_function=user_function,
                binding=binding,
                queue=resolve_setting_refs(binding.get("queueName"), setting),
                topic=resolve_setting_refs(binding.get("topicName"), setting),
                subscription=resolve_setting_refs(binding.get("subscriptionName"), setting),
                connection=str(binding.get("connection") or DEFAULT_CONNECTION),
                many=str(binding.get("cardinality") or "one").lower() == "many",
                auto_complete=binding.get("autoCompleteMessages"),
            )
            if binding.get("isSessionsEnabled"):
                log.warning("%s: sessions are not supported by the runner; receiving without a session", name)
        elif kind == "timerTrigger":
            triggers[name] = Trigger(
                name=name, kind="timer", arg_name=arg_name, user_function=user_function, binding=binding
            )
        elif kind == "httpTrigger":
            # Without a route the function's name is the route, as in the host.
            route = resolve_setting_refs(str(binding.get("route") or name), setting)
            triggers[name] = Trigger(
                name=name,
                kind="http",
                arg_name=arg_name,
                user_function=user_function,
                binding=binding,
                route=route,
                methods=tuple(_plain(m).upper() for m in binding.get("methods") or ()),
                auth_level=_plain(binding.get("authLevel") or DEFAULT_AUTH_LEVEL).lower(),
            )
        else:
            log.info("%s: trigger type %s is not run by this host", name, kind)
    return triggers
