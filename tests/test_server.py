"""``lcpfn serve``: the HTTP API gives ``predict``'s forecasts and errors, batches concurrent requests,
and never answers bad input with a 500 (schemathesis fuzzing against its OpenAPI schema)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient  # noqa: E402

from lcpfn import LCPFN, InputError  # noqa: E402
from lcpfn.server import (  # noqa: E402
    DEFAULT_QUANTILES,
    ServerConfig,
    ServerThread,
    _batches,
    _Job,
    create_app,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tiny_model_dir) -> LCPFN:
    return LCPFN.from_pretrained(tiny_model_dir)


@pytest.fixture
def client(model):
    with TestClient(create_app({"tiny": model})) as c:
        yield c


def post(client, body, headers=None):
    """POST a forecast request; NaN and Infinity go out as the JSON extensions Python writes."""
    return client.post("/v1/forecast", content=json.dumps(body), headers={"content-type": "application/json",
                                                                          **(headers or {})})


def assert_matches_predict(answer: dict, model, curves, *, max_epochs, direction="maximize", bounds="auto",
                           quantiles=DEFAULT_QUANTILES, targets=(), rtol=1e-6):
    """Every curve's forecast in ``answer`` is ``model.predict(curves, ...)``'s, to float tolerance."""
    fc = model.predict([np.asarray(c, dtype=float) for c in curves], max_epochs=max_epochs, direction=direction,
                       bounds=bounds)
    assert len(answer["forecasts"]) == len(curves)
    first = int(fc.epochs[0])
    for i, (c, got) in enumerate(zip(curves, answer["forecasts"])):
        cols = slice(len(c) + 1 - first, None)
        assert got["observed_epochs"] == len(c)
        assert got["epochs"] == list(range(len(c) + 1, max_epochs + 1))
        assert tuple(got["bounds"]) == tuple(fc.bounds)
        np.testing.assert_allclose(got["median"], np.atleast_2d(fc.median())[i, cols], rtol=rtol, atol=1e-9)
        np.testing.assert_allclose(got["mean"], np.atleast_2d(fc.mean())[i, cols], rtol=rtol, atol=1e-9)
        for q, row in zip(quantiles, got["quantiles"]):
            np.testing.assert_allclose(row, np.atleast_2d(fc.quantile(q))[i, cols], rtol=rtol, atol=1e-9)
        for t, p in zip(targets, got["prob_improve"]):
            np.testing.assert_allclose(p, np.atleast_1d(fc.prob_improve(t))[i], rtol=rtol, atol=1e-9)
        assert np.isfinite(got["median"]).all()


ACC = [[0.39, 0.52, 0.61, 0.65, 0.68, 0.70], [0.30, 0.41, 0.47], [0.2, 0.25, 0.33, 0.38, 0.41, 0.45, 0.5, 0.52]]
LOSS = [[2.08, 1.91, 1.74, 1.63, 1.55], [3.1, 2.2, 1.9]]
ERROR_PCT = [[48.0, 39.5, 33.1, 29.8], [60.0, 52.0, 47.5, 44.0, 41.0, 40.1]]
REWARD = [[-310.0, -250.0, -190.0, -160.0, -150.0], [-400.0, -390.0]]


@pytest.mark.parametrize(
    "curves, direction, bounds, targets",
    [
        (ACC, "maximize", "auto", [0.6, 0.8]),
        (ACC, "maximize", None, [0.7]),
        (LOSS, "minimize", "auto", [1.2]),
        (ERROR_PCT, "minimize", [0, 100], [20.0, 35.0]),
        (ERROR_PCT, "minimize", [None, 100], [30.0]),
        (REWARD, "maximize", "infer", [-100.0]),
    ],
)
def test__forecast__equals_direct_predict(client, model, curves, direction, bounds, targets):
    quantiles = [0.1, 0.5, 0.9]
    r = post(client, {"curves": curves, "max_epochs": 30, "direction": direction, "bounds": bounds,
                      "quantiles": quantiles, "targets": targets})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["model"] == "tiny" and answer["quantiles"] == quantiles and answer["targets"] == targets
    assert_matches_predict(answer, model, curves, max_epochs=30, direction=direction,
                           bounds=tuple(bounds) if isinstance(bounds, list) else bounds,
                           quantiles=quantiles, targets=targets)


def test__forecast__defaults_and_nan_padding_like_predict(client, model):
    """Defaults: the five quantiles, no targets, bounds 'auto'; NaN after a curve's end is padding."""
    r = post(client, {"curves": [[0.3, 0.4, 0.45, float("nan")], [0.2, 0.3, 0.35, 0.4]], "max_epochs": 12})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["quantiles"] == list(DEFAULT_QUANTILES) and answer["targets"] == []
    assert [f["observed_epochs"] for f in answer["forecasts"]] == [3, 4]
    assert_matches_predict(answer, model, [[0.3, 0.4, 0.45], [0.2, 0.3, 0.35, 0.4]], max_epochs=12)


def test__models_and_healthz(client):
    models = client.get("/v1/models").json()["models"]
    assert [(m["name"], m["default"], m["native_length"]) for m in models] == [("tiny", True, 100)]
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["models"] == ["tiny"]
    post(client, {"curves": [[0.3, 0.4]], "max_epochs": 5})
    after = client.get("/healthz").json()
    assert (after["requests"], after["curves"], after["forward_passes"]) == (
        health["requests"] + 1, health["curves"] + 1, health["forward_passes"] + 1)


def test__openapi__documents_the_request_response_and_errors(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/forecast"]["post"]
    assert {"200", "401", "413", "422"} <= set(op["responses"])
    request = spec["components"]["schemas"]["ForecastRequest"]
    assert set(request["required"]) == {"curves", "max_epochs"}
    props = request["properties"]
    assert {"curves", "max_epochs", "direction", "bounds", "quantiles", "targets", "model"} == set(props)
    config = ServerConfig()  # the caps it checks are the ones it states
    assert (props["curves"]["maxItems"], props["curves"]["items"]["maxItems"], props["max_epochs"]["maximum"]) == (
        config.max_curves, config.max_observed, config.max_epochs)
    assert client.get("/docs").status_code == 200


def _predict_error(model, curves, **kw) -> str:
    with pytest.raises(InputError) as err:
        model.predict([np.asarray(c, dtype=float) for c in curves], **kw)
    return str(err.value)


@pytest.mark.parametrize(
    "curves, options",
    [
        ([[0.1, float("nan"), 0.3]], {"max_epochs": 10}),  # NaN inside a curve
        ([[0.1, 0.2], [0.3, float("inf")]], {"max_epochs": 10}),
        ([[]], {"max_epochs": 10}),  # an empty curve
        ([[0.1, 0.2], []], {"max_epochs": 10}),
        ([[0.1, 0.2, 0.3]], {"max_epochs": 3}),  # T >= max_epochs
        ([[0.1, 0.2], [0.1, 0.2, 0.3, 0.4]], {"max_epochs": 4}),
        ([[0.1, 0.2]], {"max_epochs": 1}),
        ([[0.1, 0.2]], {"max_epochs": 10, "bounds": [1.0, 0.0]}),  # bad bounds
        ([[0.1, 0.2]], {"max_epochs": 10, "bounds": [0.0, float("inf")]}),
        ([[5.0, 6.0]], {"max_epochs": 10, "bounds": None}),  # outside [0, 1], used as they are
        ([[0.5, -1.0]], {"max_epochs": 10, "bounds": [0.0, None]}),  # beyond a known bound
        ([[1e200, 1.0]], {"max_epochs": 10}),  # beyond lcpfn.limits.MAX_ABS_VALUE
    ],
)
def test__errors__are_predicts_own_text_as_422_naming_the_field(client, model, curves, options):
    r = post(client, {"curves": curves, **options})
    assert r.status_code == 422, r.text
    body = r.json()
    bounds = options.get("bounds", "auto")
    expected = _predict_error(model, curves, max_epochs=options["max_epochs"],
                              bounds=tuple(bounds) if isinstance(bounds, list) else bounds)
    assert body["detail"] == expected
    assert body["field"] in ("curves", "max_epochs", "bounds")
    assert body["field"].rstrip("s") in body["detail"]


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"curves": [], "max_epochs": 10}, "curves", "at least one observed value"),
        ({"curves": [[[0.1, 0.2]]], "max_epochs": 10}, "curves", "curves[0][0]"),  # wrong shape: 3-D
        ({"curves": [0.1, 0.2], "max_epochs": 10}, "curves", "curves[0]"),  # wrong shape: 1-D
        ({"curves": "0.1, 0.2", "max_epochs": 10}, "curves", "a list of curves"),
        ({"curves": [[0.1, "x"]], "max_epochs": 10}, "curves", "curves[0][1]"),
        ({"curves": [[0.1, None]], "max_epochs": 10}, "curves", "curves[0][1]"),
        ({"curves": [[0.1, 0.2]]}, "max_epochs", "max_epochs is required"),
        ({"curves": [[0.1, 0.2]], "max_epochs": 10.5}, "max_epochs", "an integer"),
        ({"curves": [[0.1, 0.2]], "max_epochs": 10**12}, "max_epochs", "at most 10000"),
        ({"curves": [[0.1, 0.2]], "max_epochs": 10, "direction": "up"}, "direction", "'maximize' or 'minimize'"),
        ({"curves": [[0.1, 0.2]], "max_epochs": 10, "bounds": "guess"}, "bounds", "'auto', 'infer'"),
        ({"curves": [[0.1, 0.2]], "max_epochs": 10, "bounds": [0, 1, 2]}, "bounds", "pair [low, high]"),
        ({"curves": [[0.1, 0.2]], "max_epochs": 10, "quantiles": [0.5, 1.0]}, "quantiles", "quantiles[1]"),
        ({"curves": [[0.1, 0.2]], "max_epochs": 10, "quantiles": [float("nan")]}, "quantiles", "probability"),
        ({"curves": [[0.1, 0.2]], "max_epochs": 10, "targets": [float("inf")]}, "targets", "targets[0]"),
        ({"curves": [[0.1, 0.2]], "max_epochs": 10, "model": "huge"}, "model", "'huge' is not served"),
        ({"curves": [[0.1, 0.2]], "max_epochs": 10, "max_epoch": 10}, "max_epoch", "not a field"),
        ([[0.1, 0.2]], "body", "JSON object"),
    ],
)
def test__errors__bad_requests_are_422_naming_the_field(client, body, field, words):
    r = post(client, body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert field in r.json()["detail"] and words in r.json()["detail"]


def test__errors__unparsable_bodies_are_4xx_naming_the_body(client):
    for content in (b"{not json", b"[" * 100_000, b"\xff\xfe"):
        r = client.post("/v1/forecast", content=content, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "body" and "body" in r.json()["detail"]


def test__limits__curves_lengths_horizon_marginals_and_lists_per_request(model):
    config = ServerConfig(max_curves=3, max_observed=20, max_epochs=500, max_marginals=1000, max_quantiles=5,
                          max_targets=2)
    cases = [
        ({"curves": [[0.1, 0.2]] * 4, "max_epochs": 10}, "curves", "4 curves, more than the 3"),
        ({"curves": [[0.1] * 21], "max_epochs": 30}, "curves", "21 observed values, more than the 20"),
        ({"curves": [[0.1, 0.2]], "max_epochs": 501}, "max_epochs", "at most 500"),
        ({"curves": [[0.1, 0.2]] * 3, "max_epochs": 400}, "curves", "more than the 1000"),
        ({"curves": [[0.1, 0.2]], "max_epochs": 10, "quantiles": [0.1] * 6}, "quantiles", "more than the 5"),
        ({"curves": [[0.1, 0.2]], "max_epochs": 10, "targets": [0.1, 0.2, 0.3]}, "targets", "more than the 2"),
    ]
    with TestClient(create_app({"tiny": model}, config=config)) as c:
        for body, field, words in cases:
            r = post(c, body)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["field"] == field and field in r.json()["detail"] and words in r.json()["detail"], r.text
        assert post(c, {"curves": [[0.1, 0.2]] * 3, "max_epochs": 300}).status_code == 200  # 894 marginals


def test__limits__body_larger_than_the_cap_is_413(model):
    with TestClient(create_app({"tiny": model}, config=ServerConfig(max_body_bytes=2000))) as c:
        r = post(c, {"curves": [[0.5] * 500], "max_epochs": 600})
        assert r.status_code == 413 and r.json()["field"] == "body" and "2000 bytes" in r.json()["detail"]
        assert post(c, {"curves": [[0.5] * 50], "max_epochs": 60}).status_code == 200


def test__limits__a_chunked_body_without_length_is_cut_at_the_cap(model):
    """Over a real socket: a body sent in chunks (no Content-Length) is bounded too."""
    def chunks():
        for _ in range(100):
            yield b" " * 1000

    with ServerThread(create_app({"tiny": model}, config=ServerConfig(max_body_bytes=20_000))) as server:
        r = httpx.post(server.url + "/v1/forecast", content=chunks(), headers={"content-type": "application/json"},
                       timeout=60)
        assert r.status_code == 413 and r.json()["field"] == "body"
        ok = httpx.post(server.url + "/v1/forecast", json={"curves": [[0.3, 0.4]], "max_epochs": 5}, timeout=60)
        assert ok.status_code == 200


def test__auth__bearer_token_needed_for_v1_when_set(model, monkeypatch):
    monkeypatch.setenv("LCPFN_API_TOKEN", "s3cret")
    body = {"curves": [[0.3, 0.4]], "max_epochs": 5}
    with TestClient(create_app({"tiny": model})) as c:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic s3cret"}):
            r = post(c, body, headers)
            assert r.status_code == 401 and r.json()["field"] == "authorization", r.text
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert c.get("/v1/models").status_code == 401
        # a bad body is refused for the token first: nothing about the request leaks
        assert post(c, {"curves": "x"}).status_code == 401
        assert post(c, body, {"authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/v1/models", headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/healthz").status_code == 200
        spec = c.get("/openapi.json").json()
        assert "HTTPBearer" in spec["components"]["securitySchemes"]


class GatedModel:
    """Counts ``predict`` calls (forward passes); the first one waits for ``gate``, so the test can
    queue requests behind it without depending on timing."""

    def __init__(self, model) -> None:
        self.model = model
        self.native_length = model.native_length
        self.calls: list[int] = []  # curves per call
        self.gate = threading.Event()
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def predict(self, curves, **options):
        with self._lock:
            self.calls.append(len(curves))
        self.entered.set()
        if not self.gate.wait(timeout=300):
            raise RuntimeError("the test never opened the gate")
        return self.model.predict(curves, **options)


def _fire(url: str, bodies: list[dict], gated: GatedModel, batcher) -> list[httpx.Response]:
    """Send ``bodies`` concurrently; open the gate once every request is queued or taken."""

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=300,
                                     limits=httpx.Limits(max_connections=len(bodies))) as http:
            tasks = [asyncio.create_task(http.post("/v1/forecast", json=b)) for b in bodies]
            for _ in range(30_000):  # a guard against hanging, not a time assertion
                if gated.entered.is_set() and batcher.pending + batcher.in_round == len(bodies):
                    break
                if any(t.done() for t in tasks):
                    break  # an early answer (an error): the asserts below say which
                await asyncio.sleep(0.01)
            gated.gate.set()
            return list(await asyncio.gather(*tasks))

    return asyncio.run(run())


def _curve(i: int) -> list[float]:
    rng = np.random.default_rng(i)
    t = 3 + i % 9
    return list(np.clip(0.3 + 0.4 * (1 - np.exp(-np.arange(1, t + 1) / 6)) + 0.02 * rng.standard_normal(t), 0, 1))


def test__batching__concurrent_requests_share_forward_passes_and_get_their_own_forecast(model):
    n = 32
    gated = GatedModel(model)
    app = create_app({"tiny": gated})
    bodies = [{"curves": [_curve(i)], "max_epochs": 25, "targets": [0.7]} for i in range(n)]
    with ServerThread(app) as server:
        responses = _fire(server.url, bodies, gated, app.state.batcher)
    assert [r.status_code for r in responses] == [200] * n, [r.text for r in responses if r.status_code != 200]
    # the first pass (the first request, or all if they were queued before it started), then one
    # for all the others, queued behind it
    assert len(gated.calls) <= 2 < n and sum(gated.calls) == n
    for body, r in zip(bodies, responses):
        assert_matches_predict(r.json(), model, body["curves"], max_epochs=25, targets=[0.7], rtol=1e-5)


def test__batching__requests_that_cannot_share_a_pass_are_grouped_by_model_horizon_direction_and_bounds(model):
    gated = GatedModel(model)
    app = create_app({"tiny": gated, "other": model})
    kinds = [
        {"max_epochs": 25},
        {"max_epochs": 40},
        {"max_epochs": 25, "direction": "minimize", "bounds": [0, 1]},
        {"max_epochs": 25, "bounds": "infer"},
        {"max_epochs": 25, "model": "other"},
    ]
    bodies = [{"curves": [_curve(i), _curve(i + 100)], **kinds[i % len(kinds)]} for i in range(30)]
    with ServerThread(app) as server:
        responses = _fire(server.url, bodies, gated, app.state.batcher)
    assert [r.status_code for r in responses] == [200] * len(bodies)
    assert 4 <= len(gated.calls) <= 2 * 4 < len(bodies)  # four kinds reach the gated model, each once or twice
    for body, r in zip(bodies, responses):
        bounds = body.get("bounds", "auto")
        assert_matches_predict(r.json(), model, body["curves"], max_epochs=body["max_epochs"],
                               direction=body.get("direction", "maximize"),
                               bounds=tuple(bounds) if isinstance(bounds, list) else bounds, rtol=1e-5)


def test__batching__batches_are_cut_by_key_curves_and_marginals():
    loop = asyncio.new_event_loop()
    try:
        def job(n, max_epochs=20, direction="maximize"):
            return _Job(model="m", curves=[np.zeros(5)] * n, max_epochs=max_epochs, direction=direction,
                        bounds=(0.0, 1.0), quantiles=(0.5,), targets=(), future=loop.create_future())

        a, b, c, d, e = job(2), job(3, max_epochs=30), job(2), job(1, direction="minimize"), job(2)
        config = ServerConfig(max_batch_curves=4, max_batch_marginals=10_000)
        assert [[jobs.index(x) for x in batch] for jobs in [[a, b, c, d, e]]
                for batch in _batches(jobs, config)] == [[0, 2], [4], [1], [3]]
        big = job(50)  # larger than any batch: runs alone
        assert list(_batches([big], config)) == [[big]]
        tight = ServerConfig(max_batch_curves=100, max_batch_marginals=45)  # each job of 2 curves: 30 marginals
        assert [len(batch) for batch in _batches([a, c, e], tight)] == [1, 1, 1]
    finally:
        loop.close()


def test__config__rejects_bad_values_and_the_cli_states_its_defaults():
    for bad in ({"max_curves": 0}, {"max_epochs": 10**9}, {"max_wait_ms": -1.0}, {"max_batch_curves": True},
                {"max_quantiles": 2}):
        with pytest.raises(InputError, match=next(iter(bad))):
            ServerConfig(**bad)  # type: ignore[arg-type]
    from lcpfn.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    helps = {a.dest: a.help for a in sub.choices["serve"]._actions}  # type: ignore[attr-defined]
    defaults = ServerConfig()
    assert f"(default: {defaults.max_wait_ms:g})" in helps["max_wait_ms"]
    assert f"(default: {defaults.max_batch_curves})" in helps["max_batch_curves"]


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, **env})


def test__cli__serve_help_imports_neither_torch_nor_fastapi():
    code = (
        "import sys\nfrom lcpfn.cli import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'fastapi', 'uvicorn'}))\n"
    )
    done = _run_python(code)
    assert done.returncode == 0, done.stderr
    assert "--max-batch-curves" in done.stdout and "LCPFN_API_TOKEN" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test__cli__serve_without_the_extra_says_what_to_install():
    code = "import sys\nsys.modules['fastapi'] = None\nfrom lcpfn.cli import main\nsys.exit(main(['serve']))\n"
    done = _run_python(code)
    assert done.returncode == 2
    assert "pip install 'lcpfn[serve]'" in done.stderr and "Traceback" not in done.stderr


def test__cli__serve_refuses_bad_options_before_loading_anything():
    done = _run_python("import sys\nfrom lcpfn.cli import main\n"
                       "sys.exit(main(['serve', '--model', 'default', '--model', 'default']))\n")
    assert done.returncode == 2 and "--model names a model twice" in done.stderr
    done = _run_python("import sys\nfrom lcpfn.cli import main\nsys.exit(main(['serve', '--max-wait-ms', '-3']))\n")
    assert done.returncode == 2 and "--max-wait-ms must be" in done.stderr


# --- fuzzing against the OpenAPI schema -------------------------------------------------------------

try:
    import schemathesis
    from hypothesis import HealthCheck, settings
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )
except ImportError:  # the fuzz test needs schemathesis (the dev extra); the rest does not
    schemathesis = None


@pytest.fixture(scope="module")
def live_server(model):
    config = ServerConfig(max_epochs=2000, max_marginals=20_000)  # keeps each fuzzed forecast small
    with ServerThread(create_app({"tiny": model}, config=config)) as server:
        yield server


@pytest.mark.parametrize("method, path, mode", [
    ("POST", "/v1/forecast", "positive"), ("POST", "/v1/forecast", "negative"),
    ("GET", "/v1/models", "positive"), ("GET", "/healthz", "positive"),  # no inputs: nothing negative to send
])
def test__fuzz__no_500_and_every_error_names_its_field(live_server, method, path, mode):
    """Schemathesis requests against the app's own schema, valid (positive) and invalid (negative):
    never a 5xx, responses as documented, and every 4xx body names the field at fault. A fixed
    example budget, derandomized: the same requests every run."""
    if schemathesis is None:
        pytest.skip("schemathesis is not installed (pip install 'lcpfn[dev]')")
    from hypothesis import given

    spec = schemathesis.openapi.from_dict(create_app({"tiny": None}).openapi())  # type: ignore[dict-item]
    strategy = spec[path][method].as_strategy(generation_mode=schemathesis.GenerationMode(mode))
    seen: dict[int, int] = {}

    @given(case=strategy)
    @settings(max_examples=40 if path == "/v1/forecast" else 5, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        response = case.call(base_url=live_server.url, timeout=120)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                                 content_type_conformance, response_schema_conformance])
        if 400 <= response.status_code < 500 and response.status_code not in (404, 405):
            body = response.json()
            assert body["field"], body
            assert body["field"].rstrip("s") in body["detail"], body

    check()
    assert not any(code >= 500 for code in seen), seen
    if path == "/v1/forecast":  # the budget reached the validation, and valid requests the forecast
        assert seen.get(422, 0) > 0 and (mode == "negative" or seen.get(200, 0) > 0), seen
