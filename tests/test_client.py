"""``lcpfn.client.ForecastClient``: a server's forecasts read like ``predict``'s, with ``predict``'s
errors, against a real server on a free loopback port (in a thread, and ``lcpfn serve`` itself)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from lcpfn import LCPFN, InputError  # noqa: E402
from lcpfn.client import ForecastClient, ForecastServerError, RemoteForecast  # noqa: E402
from lcpfn.server import ServerConfig, ServerThread, create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tiny_model_dir) -> LCPFN:
    return LCPFN.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def server(model):
    with ServerThread(create_app({"tiny": model}, config=ServerConfig(max_curves=50))) as s:
        yield s


@pytest.fixture
def client(server, monkeypatch) -> ForecastClient:
    monkeypatch.delenv("LCPFN_API_TOKEN", raising=False)
    return ForecastClient(server.url)


def assert_same_forecast(remote: RemoteForecast, local, *, quantiles=(), targets=()) -> None:
    """``remote`` holds ``local``'s results (float tolerance), shapes included."""
    np.testing.assert_array_equal(remote.epochs, local.epochs)
    np.testing.assert_array_equal(remote.lengths, np.atleast_1d(local.lengths))
    assert remote.bounds == local.bounds and remote.direction == local.direction
    assert remote.max_epochs == local.max_epochs and remote.n_curves == local.n_curves
    for got, want in [(remote.median(), local.median()), (remote.mean(), local.mean()),
                      *[(remote.quantile(q), local.quantile(q)) for q in quantiles]]:
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9, equal_nan=True)
    for t in targets:
        got, want = remote.prob_improve(t), local.prob_improve(t)
        assert type(got) is type(want)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test__predict__curves_of_different_lengths_equal_local_predict(client, model):
    curves = [np.array([0.39, 0.52, 0.61, 0.65, 0.68]), np.array([0.30, 0.41, 0.47]),
              np.array([0.2, 0.3, 0.35, 0.4, 0.42, 0.45, 0.47])]
    remote = client.predict(curves, max_epochs=30, quantiles=[0.1, 0.9], targets=[0.6, 0.75])
    local = model.predict(curves, max_epochs=30)
    assert_same_forecast(remote, local, quantiles=[0.1, 0.9], targets=[0.6, 0.75])
    median = remote.median()  # NaN where a curve has observed the epoch, as predict gives it
    assert np.isnan(median[0, :2]).all() and np.isfinite(median[0, 2:]).all() and np.isfinite(median[1]).all()
    lo, hi = remote.interval(0.8)
    np.testing.assert_allclose(lo, local.quantile(0.1), rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(hi, local.quantile(0.9), rtol=1e-6, equal_nan=True)
    # one threshold per curve, as Forecast.prob_improve takes them
    np.testing.assert_allclose(remote.prob_improve([0.6, 0.75, 0.6]),
                               local.prob_improve(np.array([0.6, 0.75, 0.6])), rtol=1e-6)


def test__predict__one_curve_comes_back_one_dimensional(client, model):
    curve = np.array([0.39, 0.52, 0.61, 0.65, 0.68, 0.70])
    remote = client.predict(curve, max_epochs=20, targets=[0.8])
    local = model.predict(curve, max_epochs=20)
    assert remote.median().shape == (14,)
    assert_same_forecast(remote, local, quantiles=[0.05, 0.95], targets=[0.8])


@pytest.mark.parametrize("curves, direction, bounds", [
    ([[2.08, 1.91, 1.74, 1.63], [3.0, 2.5, 2.2, 2.0, 1.9]], "minimize", "auto"),  # a loss: (0, None)
    ([[48.0, 39.5, 33.1, 29.8]], "minimize", (0, 100)),
    ([[-310.0, -250.0, -190.0]], "maximize", "infer"),
    ([[-310.0, -250.0, -190.0]], "maximize", (None, 0.0)),
    ([[0.3, 0.4, 0.5]], "maximize", None),
])
def test__predict__directions_and_bounds_like_predict(client, model, curves, direction, bounds):
    remote = client.predict(curves, max_epochs=15, direction=direction, bounds=bounds, targets=[1.0])
    local = model.predict(np.array(curves[0]) if len(curves) == 1 else [np.array(c) for c in curves],
                          max_epochs=15, direction=direction, bounds=bounds)
    if len(curves) == 1:  # a list of one curve is 2-D for the client; compare row 0
        assert remote.median().shape == (1, 15 - len(curves[0]))
        np.testing.assert_allclose(remote.median()[0], local.median(), rtol=1e-6)
        np.testing.assert_allclose(remote.prob_improve(1.0)[0], local.prob_improve(1.0), rtol=1e-6)
        assert remote.bounds == local.bounds
    else:
        assert_same_forecast(remote, local, quantiles=[0.25], targets=[1.0])


def test__results__only_what_was_requested(client):
    fc = client.predict([0.3, 0.4, 0.5], max_epochs=10, quantiles=[0.1], targets=[0.7])
    assert fc.quantiles == [0.1, 0.5] and fc.targets == [0.7]
    with pytest.raises(InputError, match=r"q=0\.9 was not requested.*quantiles=\[\.\.\., 0\.9\]"):
        fc.quantile(0.9)
    with pytest.raises(InputError, match=r"threshold 0\.8 was not requested.*targets: 0\.7"):
        fc.prob_improve(0.8)
    with pytest.raises(InputError, match="epoch must be the last epoch"):
        fc.prob_improve(0.7, epoch=5)


def _predict_error(fn) -> str:
    with pytest.raises(InputError) as err:
        fn()
    return str(err.value)


@pytest.mark.parametrize("curves, options", [
    ([0.1, float("nan"), 0.3], {"max_epochs": 10}),
    ([[0.1, 0.2], [0.3, float("inf")]], {"max_epochs": 10}),
    ([[0.1, 0.2, 0.3]], {"max_epochs": 3}),
    ([0.1, 0.2], {"max_epochs": 10, "bounds": (1.0, 0.0)}),
    ([0.1, 0.2], {"max_epochs": 10, "direction": "up"}),
    ([0.1, 0.2], {"max_epochs": 1}),
])
def test__errors__bad_input_raises_predicts_error_before_any_request(model, curves, options):
    unreachable = ForecastClient("http://127.0.0.1:9")  # nothing listens: the check is local
    got = _predict_error(lambda: unreachable.predict(curves, **options))
    assert got == _predict_error(lambda: model.predict(curves, **options))


def test__errors__the_servers_4xx_message_is_an_input_error(client):
    with pytest.raises(InputError, match=r"model 'nope' is not served here; the served models are 'tiny'"):
        client.predict([0.3, 0.4], max_epochs=10, model="nope")
    with pytest.raises(InputError, match="curves holds 51 curves, more than the 50 one request may hold"):
        client.predict(np.full((51, 3), 0.5), max_epochs=10)
    with pytest.raises(InputError, match=r"quantiles\[0\] must be a probability in \(0, 1\), but got 1\.5"):
        client.predict([0.3, 0.4], max_epochs=10, quantiles=[1.5])
    with pytest.raises(InputError, match=r"targets\[1\] must be a finite number"):
        client.predict([0.3, 0.4], max_epochs=10, targets=[0.5, float("nan")])


def test__auth__token_from_the_argument_or_the_environment(model, monkeypatch):
    monkeypatch.setenv("LCPFN_API_TOKEN", "s3cret")
    with ServerThread(create_app({"tiny": model})) as s:
        assert ForecastClient(s.url).predict([0.3, 0.4], max_epochs=5).median().shape == (3,)
        monkeypatch.delenv("LCPFN_API_TOKEN")
        with pytest.raises(InputError, match="authorization must be 'Bearer <token>'"):
            ForecastClient(s.url).predict([0.3, 0.4], max_epochs=5)
        with pytest.raises(InputError, match="authorization"):
            ForecastClient(s.url, token="wrong").models()
        assert ForecastClient(s.url, token="s3cret").models()[0]["name"] == "tiny"
        assert ForecastClient(s.url).health()["status"] == "ok"  # open without a token
        assert "s3cret" not in repr(ForecastClient(s.url, token="s3cret"))


def test__errors__an_unreachable_server_is_a_server_error():
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ForecastServerError, match=f"cannot reach the lcpfn server at http://127.0.0.1:{port}"):
        ForecastClient(f"http://127.0.0.1:{port}", timeout=10).predict([0.3, 0.4], max_epochs=5)
    with pytest.raises(InputError, match="url must start with http"):
        ForecastClient("127.0.0.1:8000")


def test__client__imports_neither_torch_nor_the_server():
    code = ("import sys, lcpfn.client\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'fastapi', 'uvicorn', 'pydantic'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test__cli__lcpfn_serve_answers_the_client_on_loopback_and_stops_on_sigterm(tiny_model_dir, model):
    env = {k: v for k, v in os.environ.items() if k != "LCPFN_API_TOKEN"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lcpfn.cli", "serve", "--model", str(tiny_model_dir), "--port", "0",
         "--threads", "1", "--log-level", "warning"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the model is loaded and the port bound
        assert line.startswith("lcpfn serve: "), (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.split(" at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")  # loopback unless --host says otherwise
        client = ForecastClient(url)
        assert client.health()["models"] == [str(tiny_model_dir)]
        curves = [np.array([0.3, 0.4, 0.45]), np.array([0.2, 0.3, 0.35, 0.38, 0.4])]
        assert_same_forecast(client.predict(curves, max_epochs=20, targets=[0.5]), model.predict(curves, max_epochs=20),
                             targets=[0.5])
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.strip().endswith("lcpfn serve: stopped")  # a graceful stop, not a kill
