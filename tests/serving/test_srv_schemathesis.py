"""schemathesis against the service's own OpenAPI document: no request gets a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from aisle.serving import ServingSettings, create_app


def test_no_5xx_for_any_generated_request(shop_workspace: Path, tmp_path: Path) -> None:
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(shop_workspace, ws)
    app = create_app(ServingSettings(workspace=ws, poll_interval_s=0, admin_token="s3cret"))
    failures: list[str] = []
    calls: dict[str, int] = {}
    with TestClient(app, raise_server_exceptions=False):  # runs the app's startup (model load)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)

        for operation in schema.get_all_operations():
            op = operation.ok()

            @settings(max_examples=15, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy())
            def check(case: schemathesis.Case) -> None:
                response = case.call()
                key = f"{case.method} {case.path}"
                calls[key] = calls.get(key, 0) + 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

            check()
    assert not failures, failures[:10]
    # every operation of the document was exercised
    assert len(calls) >= 10 and sum(calls.values()) > 50, calls


pytestmark = pytest.mark.slow
