from __future__ import annotations

import inspect
import subprocess
import sys

import sedma.deploy as deploy


def test_public_api_is_exactly_all() -> None:
    # Submodules are bound as attributes on import; everything else public must be in __all__.
    public = {n for n in dir(deploy) if not n.startswith("_") and not inspect.ismodule(getattr(deploy, n))}
    assert public == set(deploy.__all__)


def test_plan_signature_is_the_documented_one() -> None:
    sig = inspect.signature(deploy.plan)
    params = sig.parameters
    assert list(params)[:2] == ["workflow", "cluster"]
    for name, default in (("solver", "auto"), ("lambda_mem", None), ("time_limit", None), ("seed", 0)):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY and params[name].default == default
    assert params["memory"].kind is inspect.Parameter.KEYWORD_ONLY


def test_importing_the_package_does_not_load_the_kubernetes_client() -> None:
    code = "import sys, sedma.deploy; print('kubernetes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"
