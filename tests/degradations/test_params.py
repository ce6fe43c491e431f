"""The per-sample parameter draw: a pure function of the seed, within the configured ranges,
with the configured frequencies; DDP ranks draw from their samples' global positions."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from helpers import CONF_DIR
from omegaconf import OmegaConf

from srlab.data.degradations import KERNEL_TYPES, DegradationConfig, degradation_config, draw_params
from srlab.data.degradations.params import sample_seed
from srlab.data.sampling import TrainSampler
from srlab.errors import ConfigError

DRAWS = 3000


@pytest.fixture(scope="module")
def draws() -> list[dict[str, float]]:
    config = DegradationConfig()
    return [draw_params(config, sample_seed(seed)) for seed in range(DRAWS)]


def test_the_yaml_preset_is_the_published_default() -> None:
    node = OmegaConf.load(CONF_DIR / "data" / "degradation" / "realesrgan.yaml")
    assert degradation_config(OmegaConf.to_container(node)) == DegradationConfig()


def test_a_draw_is_a_function_of_its_seed_alone() -> None:
    config = DegradationConfig()
    assert draw_params(config, 123) == draw_params(config, 123)
    assert draw_params(config, 123) != draw_params(config, 124)


def test_changing_one_probability_keeps_the_other_parameters(draws) -> None:
    changed = degradation_config({"first": {"gaussian_noise_prob": 1.0}})
    other = draw_params(changed, sample_seed(0))
    same = {k for k in other if other[k] == draws[0][k]}
    assert set(other) - same <= {"s1_gaussian"}


def test_draws_stay_in_their_ranges(draws) -> None:
    for p in draws:
        assert p["s1_blur"] == 1.0
        for stage, sigma in (("s1_", 3.0), ("s2_", 1.5)):
            assert 7 <= p[f"{stage}ksize"] <= 21 and p[f"{stage}ksize"] % 2 == 1
            if KERNEL_TYPES[p[f"{stage}kernel"]] == "sinc":
                low = math.pi / 3 if p[f"{stage}ksize"] < 13 else math.pi / 5
                assert low <= p[f"{stage}omega"] <= math.pi
            else:
                assert 0.2 <= p[f"{stage}sigma_x"] <= sigma and 0.2 <= p[f"{stage}sigma_y"] <= sigma
        assert 0.15 <= p["s1_resize"] <= 1.5 and 0.3 <= p["s2_resize"] <= 1.2
        assert 1 <= p["s1_noise_sigma"] <= 30 and 1 <= p["s2_noise_sigma"] <= 25
        assert 0.05 <= p["s1_poisson_scale"] <= 3 and 0.05 <= p["s2_poisson_scale"] <= 2.5
        assert 30 <= p["s1_jpeg"] <= 95 and p["s1_jpeg"] == int(p["s1_jpeg"])
        assert math.pi / 3 <= p["final_omega"] <= math.pi


def _close(count: int, probability: float) -> bool:
    # Within 4.5 standard deviations of the binomial mean: a false alarm ~1e-5 per check.
    sd = math.sqrt(DRAWS * probability * (1 - probability))
    return abs(count - DRAWS * probability) <= 4.5 * sd + 1


def test_frequencies_follow_the_probabilities(draws) -> None:
    kinds = Counter(KERNEL_TYPES[p["s1_kernel"]] for p in draws)
    assert _close(kinds["sinc"], 0.1)
    for name, probability in zip(
        KERNEL_TYPES[:-1], DegradationConfig().first.kernel_probs, strict=True
    ):
        assert _close(kinds[name], 0.9 * probability), name
    up = sum(p["s1_resize"] > 1 for p in draws)
    keep = sum(p["s1_resize"] == 1 for p in draws)
    assert _close(up, 0.2) and _close(keep, 0.1)
    assert _close(sum(p["s2_blur"] for p in draws), 0.8)
    assert _close(sum(p["s1_gaussian"] for p in draws), 0.5)
    assert _close(sum(p["s2_gray"] for p in draws), 0.4)
    assert _close(sum(p["final_sinc"] for p in draws), 0.8)
    assert _close(sum(p["final_resize_first"] for p in draws), 0.5)
    generalized = [p["s1_beta"] for p in draws if KERNEL_TYPES[p["s1_kernel"]].startswith("gen")]
    assert min(generalized) >= 0.5 and max(generalized) <= 4
    assert 0.3 < sum(b < 1 for b in generalized) / len(generalized) < 0.7


def test_ddp_ranks_draw_from_global_positions() -> None:
    # Rank r of W takes global positions r, r + W, ...: its samples' seeds (hence their
    # degradations) are those of the one-process order at the same positions, all distinct.
    single = TrainSampler(12, batch_size=4, scales=[2], seed=7).keys(3)
    ranks = [TrainSampler(12, 2, [2], seed=7, num_replicas=2, rank=r).keys(3) for r in (0, 1)]
    for rank, keys in enumerate(ranks):
        assert [k.seed for k in keys] == [k.seed for k in single[rank::2]]
    seeds = [sample_seed(k.seed) for keys in ranks for k in keys]
    assert len(set(seeds)) == len(seeds) == 12


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"first": {"sinc_prob": 1.5}}, "data.degradation.first.sinc_prob=1.5"),
        ({"second": {"kernel_sizes": [8, 21]}}, "odd"),
        ({"first": {"resize_range": [1.2, 1.5]}}, "must hold 1"),
        ({"final": {"resize_modes": ["nearest"]}}, "data.degradation.final.resize_modes"),
        ({"first": {"noise": 3}}, "unknown key(s) ['noise']"),
        ({"first": {"jpeg_range": [30, 120]}}, "1..100"),
        ("realesrgan", "data/degradation=realesrgan"),
    ],
)
def test_bad_settings_name_their_key(spec, words: str) -> None:
    with pytest.raises(ConfigError, match=None) as error:
        degradation_config(spec)
    assert words in str(error.value)
