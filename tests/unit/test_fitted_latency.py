"""Fitted latency models: empirical quantiles, the latency.json format, and the emulator's draws from them."""

from __future__ import annotations

import json
import math
import random

import pytest

from vlab.calibrate import ks_two_sample
from vlab.emulator.fitted_latency import FORMAT, Empirical, FittedLatency
from vlab.emulator.latency import LatencySampler, describe, resolve
from vlab.errors import ConfigError


def _model(**splits: dict[str, dict[str, Empirical]]) -> FittedLatency:
    rng = random.Random(1)
    stages = {
        "endpointing": Empirical.fit([80 + rng.expovariate(1 / 30) for _ in range(500)]),
        "commit": Empirical.fit([rng.gauss(150, 20) for _ in range(500)]),
        "first_text": Empirical.fit([rng.gauss(300, 40) for _ in range(500)]),
        "first_audio": Empirical.fit([rng.gauss(-10, 5) for _ in range(500)]),
        "audio_rate": Empirical.fit([rng.uniform(2, 4) for _ in range(500)]),
        "network": Empirical.fit([rng.uniform(20, 40) for _ in range(500)]),
    }
    return FittedLatency(
        stages, provenance={"runs": [{"run": "r1"}], "dates": ["2026-01-01T00:00:00"]}, **splits
    )


def test_empirical_quantiles_interpolate_like_numpy_and_draws_follow_them():
    values = [float(v) for v in range(101)]
    dist = Empirical.fit([*values, math.nan])
    assert dist.n == 101
    assert dist.quantile(0.5) == 50.0 and dist.quantile(0.905) == pytest.approx(90.5)
    rng = random.Random(3)
    draws = sorted(dist.draw(rng) for _ in range(4000))
    assert draws[2000] == pytest.approx(50, abs=3) and draws[3600] == pytest.approx(90, abs=3)
    with pytest.raises(ValueError):
        Empirical.fit([math.nan])


def test_a_fitted_model_survives_its_file(tmp_path):
    model = _model(by_voice={"en-US-Ava": {"first_audio": Empirical.fit([1.0, 2.0, 3.0])}})
    path = model.save(tmp_path / "latency.json")
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT and data["stages"]["commit"]["n"] == 500
    back = FittedLatency.load(path)
    for name, dist in model.stages.items():
        assert back.stages[name].quantiles == pytest.approx(dist.quantiles, abs=1e-3)
    assert back.by_voice["en-US-Ava"]["first_audio"].quantile(0.5) == 2.0
    assert back.provenance == model.provenance


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "could not be read as JSON"),
        ('{"stages": {}}', "is not a fitted latency model"),
        (json.dumps({"format": FORMAT, "stages": {"warp": {"quantiles": [1]}}}), "unknown stage"),
        (json.dumps({"format": FORMAT, "stages": {"commit": {"quantiles": [3, 1]}}}), "ascending"),
    ],
)
def test_a_bad_latency_file_says_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "latency.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        resolve(str(path))
    with pytest.raises(ConfigError, match="not found"):
        resolve(tmp_path / "missing.json")


def test_a_file_given_as_the_latency_is_read_as_a_fitted_model_whatever_its_name(tmp_path):
    table = tmp_path / "compare.csv"
    table.write_text("setting,measure\n")  # was "unknown latency preset 'compare.csv'"
    with pytest.raises(
        ConfigError, match=r"^'.*compare.csv' is not a fitted latency model: it could not be read"
    ):
        resolve(str(table))
    with pytest.raises(ConfigError, match="unknown latency preset 'typcal'"):  # no such file: a preset's typo
        resolve("typcal")


def test_the_sampler_draws_fitted_stages_seeded_and_by_voice(tmp_path):
    path = _model(by_voice={"v2": {"audio_rate": Empirical.fit([9.0] * 60)}}).save(tmp_path / "latency.json")
    model = resolve(str(path), seed=5)
    assert model.name == "fitted:latency.json" and model.fitted is not None
    a, b = LatencySampler(model), LatencySampler(model)
    draws = [a.response_delays(voice="v1") for _ in range(300)]
    assert draws == [b.response_delays(voice="v1") for _ in range(300)]  # seeded
    assert {d["network"] for d in draws} == {0.0}  # the measured stages hold the network
    commits = [d["commit"] for d in draws]
    assert (
        ks_two_sample(commits, [model.fitted.stages["commit"].draw(random.Random(i)) for i in range(300)])[1]
        > 0.01
    )
    assert all(2 <= d["tts_realtime_factor"] <= 4 for d in draws)
    assert all(d["first_token"] > 150 for d in draws) and min(d["tts_first_byte"] for d in draws) < 0
    assert a.response_delays(voice="v2")["tts_realtime_factor"] == 9.0
    # speech_stopped: at the end of the silence timer plus the measured endpointing, never before the decision
    at = [a.speech_stopped_at_ms(1000.0, 990.0) for _ in range(200)]
    assert min(at) >= 990.0 + 80.0 - 1e-9 and max(at) > 1100
    assert a.speech_stopped_at_ms(5000.0, 990.0) == 5000.0
    assert 20 <= a.speech_started_delay_ms() <= 40


def test_fitted_draws_below_what_a_response_can_take_are_clamped(tmp_path):
    never = {"commit": Empirical.fit([-5.0] * 60), "audio_rate": Empirical.fit([0.01] * 60)}
    fitted = FittedLatency(never, provenance={"runs": [], "dates": []})
    path = fitted.save(tmp_path / "latency.json")
    delays = LatencySampler(resolve(str(path), seed=0)).response_delays()
    assert delays == {  # no first_text or first_audio fitted: none
        "commit": 0.0, "network": 0.0, "first_token": 0.0, "tts_first_byte": 0.0, "tts_realtime_factor": 0.1,
    }  # fmt: skip


def test_stages_a_fitted_model_lacks_take_no_time(tmp_path):
    only_rate = FittedLatency({"audio_rate": Empirical.fit([3.0] * 60)}, provenance={"runs": [], "dates": []})
    sampler = LatencySampler(resolve(str(only_rate.save(tmp_path / "latency.json")), seed=0))
    assert sampler.response_delays() == {
        "commit": 0.0, "network": 0.0, "first_token": 0.0, "tts_first_byte": 0.0, "tts_realtime_factor": 3.0,
    }  # fmt: skip
    assert sampler.speech_started_delay_ms() == 0.0  # no network measured
    assert sampler.speech_stopped_at_ms(1000.0, 990.0) == 1000.0  # no endpointing: at the decision
    assert sampler.speech_stopped_at_ms(900.0, 990.0) == 990.0  # … and never before the audio's end


def test_describe_names_a_preset_and_the_origin_of_a_fitted_model(tmp_path):
    assert describe("typical") == {"name": "typical"}
    path = _model().save(tmp_path / "lat.json")
    info = describe(str(path))
    assert info["file"] == str(path) and info["runs"] == 1 and info["dates"] == ["2026-01-01T00:00:00"]


def test_ks_two_sample_tells_same_from_shifted():
    rng = random.Random(0)
    a = [rng.gauss(0, 1) for _ in range(300)]
    b = [rng.gauss(0, 1) for _ in range(300)]
    c = [rng.gauss(0.5, 1) for _ in range(300)]
    assert ks_two_sample(a, b)[1] > 0.05
    assert ks_two_sample(a, c)[1] < 1e-4


def test_a_sweep_config_takes_a_fitted_model_and_its_report_names_where_it_came_from(tmp_path):
    from vlab.report.build import _latency_note
    from vlab.sweep import load_config
    from vlab.sweep.manifest import _latency_model

    _model().save(tmp_path / "models" / "latency.json")
    cfg = load_config(
        {"target": {"latency": "models/latency.json"}, "grid": {"threshold": [0.5]}}, base_dir=tmp_path
    )
    assert cfg.latency == str(tmp_path / "models" / "latency.json")
    manifest = {"latency": cfg.latency, "latency_model": _latency_model(cfg.latency)}
    note = _latency_note(manifest)
    assert note.startswith(
        "fitted:latency.json (fitted from 1 runs against unknown host, 2026-01-01 to 2026-01-01"
    )
    assert _latency_note({"latency": "typical", "latency_model": _latency_model("typical")}) == "typical"
    with pytest.raises(ConfigError, match="not found"):
        load_config({"target": {"latency": "nope.json"}, "grid": {"threshold": [0.5]}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="latency.json from `vlab calibrate`"):
        load_config({"target": {"latency": "fast"}, "grid": {"threshold": [0.5]}}, base_dir=tmp_path)


def test_an_mcp_call_draws_from_the_fitted_stage_or_takes_no_time_without_it(tmp_path):
    fitted = FittedLatency({"mcp_call": Empirical.fit([500.0] * 60)}, provenance={"runs": [], "dates": []})
    sampler = LatencySampler(resolve(str(fitted.save(tmp_path / "mcp.json")), seed=0))
    assert sampler.mcp_call_ms() == 500.0
    only_rate = FittedLatency({"audio_rate": Empirical.fit([3.0] * 60)}, provenance={"runs": [], "dates": []})
    assert LatencySampler(resolve(str(only_rate.save(tmp_path / "rate.json")), seed=0)).mcp_call_ms() == 0.0
    typical = [LatencySampler(resolve("typical"), seed_offset=i).mcp_call_ms() for i in range(50)]
    assert min(typical) >= 300.0 and max(typical) > 350.0  # fixed 300 ms plus a half-normal jitter
