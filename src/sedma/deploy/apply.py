"""Server-side apply of compiled manifests through the official ``kubernetes`` client.

Every object is sent as ``PATCH`` with content type ``application/apply-patch+yaml``,
``fieldManager=sedma`` and ``force=true`` (sedma owns the fields it writes). ``--dry-run``
compares each object with the live one when the cluster answers, else prints it whole.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from sedma.errors import BackendUnavailable, ConfigError, InputError

FIELD_MANAGER = "sedma"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
TIMEOUT = (3.0, 15.0)  # connect, read seconds


@dataclass(frozen=True)
class Change:
    """What applying one object did (or would do): created, changed, unchanged; with a diff."""

    kind: str
    namespace: str
    name: str
    action: str
    diff: str = ""


def api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """An ApiClient for the current (or given) kubeconfig and context; ConfigError if none."""
    try:
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise ConfigError("applying needs the official Kubernetes client: pip install 'sedma[k8s]'") from None

    try:
        return config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, persist_config=False
        )
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        where = kubeconfig or "~/.kube/config (or $KUBECONFIG)"
        raise ConfigError(f"no usable kubeconfig at {where}: {str(exc).splitlines()[0]}") from None


def _ops(client: Any, kind: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    from kubernetes import client as k8s

    if kind == "Deployment":
        apps = k8s.AppsV1Api(client)
        return apps.read_namespaced_deployment, apps.patch_namespaced_deployment
    if kind == "Service":
        core = k8s.CoreV1Api(client)
        return core.read_namespaced_service, core.patch_namespaced_service
    raise InputError(f"cannot apply kind {kind!r} (sedma compiles Deployments and Services)")


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one API call; unreachable servers and API errors become one-line typed errors."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn(*args, _request_timeout=TIMEOUT, **kwargs)
    except ApiException as exc:
        if exc.status == 404:
            return None
        reason = (exc.reason or "").strip() or "error"
        raise BackendUnavailable(
            f"Kubernetes API answered {exc.status} {reason}: {_api_message(exc)}"
        ) from None
    except (HTTPError, OSError) as exc:
        host = getattr(getattr(fn, "__self__", None), "api_client", None)
        url = host.configuration.host if host is not None else "the API server"
        raise BackendUnavailable(f"Kubernetes API server {url} unreachable: {type(exc).__name__}") from None


def _api_message(exc: Any) -> str:
    try:
        return str(yaml.safe_load(exc.body).get("message", "")).splitlines()[0]
    except Exception:
        return str(exc.body or "")[:200]


def apply_objects(client: Any, objects: Sequence[Mapping[str, Any]]) -> list[Change]:
    """Server-side apply each object (field manager ``sedma``); report created or configured."""
    out = []
    for obj in objects:
        meta = obj["metadata"]
        read, patch = _ops(client, obj["kind"])
        live = _call(read, meta["name"], meta["namespace"])
        _call(
            patch,
            meta["name"],
            meta["namespace"],
            dict(obj),
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY_CONTENT_TYPE,
        )
        out.append(Change(obj["kind"], meta["namespace"], meta["name"], "configured" if live else "created"))
    return out


def dry_run(client: Any | None, objects: Sequence[Mapping[str, Any]]) -> list[Change]:
    """What applying would change: a diff against live objects, or the whole object if new/unreachable."""
    out = []
    for obj in objects:
        meta = obj["metadata"]
        live = None
        if client is not None:
            read, _ = _ops(client, obj["kind"])
            raw = _call(read, meta["name"], meta["namespace"])
            live = None if raw is None else client.sanitize_for_serialization(raw)
        want = yaml.safe_dump(dict(obj), sort_keys=True)
        if live is None:
            out.append(Change(obj["kind"], meta["namespace"], meta["name"], "create", want))
            continue
        have = yaml.safe_dump(project(live, obj), sort_keys=True)
        diff = "".join(difflib.unified_diff(have.splitlines(True), want.splitlines(True), "live", "planned"))
        out.append(
            Change(obj["kind"], meta["namespace"], meta["name"], "change" if diff else "unchanged", diff)
        )
    return out


def project(live: Any, desired: Any) -> Any:
    """The part of ``live`` at the paths ``desired`` sets (what server-side apply would compare)."""
    if isinstance(desired, Mapping):
        src = live if isinstance(live, Mapping) else {}
        return {k: project(src.get(k), v) for k, v in desired.items() if k in src}
    if isinstance(desired, list) and isinstance(live, list):
        return [project(a, b) for a, b in zip(live, desired, strict=False)] + live[len(desired) :]
    return live
