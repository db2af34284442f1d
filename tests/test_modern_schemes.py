"""The inits since He (variance_scaling, delta_orthogonal, dirac, ZerO, GPT-2) and user plugin schemes,
each against a reference written independently of initbench: scipy, torch.nn.init, the ZerO authors'
``ZerO_Init_on_matrix`` transcribed here, and nanoGPT's name-based rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from initbench.config.loading import validate_config
from initbench.core.errors import InitbenchError
from initbench.engines.base import Run
from initbench.engines.modules import initialize
from initbench.nets.activations import ACTIVATIONS
from initbench.nets.architectures import ParamContext, build_builtin, fans, parameter_contexts
from initbench.schemes.base import TRUNCATED_STD_AT_2
from initbench.schemes.isometric import hadamard, zero_matrix
from initbench.schemes.specs import parse_scheme_spec, scheme_from_spec
from tests import plugin_schemes
from tests.conftest import read_csv, write_config
from tests.probe_models import tiny_gpt

RELU = ACTIVATIONS.get("relu")()


def context_for(shape: tuple[int, ...], path: str = "layer", module_type: str = "Conv2d", **branch: int) -> ParamContext:
    fan_in, fan_out = fans(shape)
    return ParamContext(path, module_type, "weight", shape, fan_in, fan_out, 1, 1, **branch)


def draw(spec: str, shape: tuple[int, ...], seed: int = 0, **branch: int) -> torch.Tensor:
    tensor = torch.empty(shape, dtype=torch.float64)
    scheme_from_spec(spec).resolve(RELU).sample_(tensor, context_for(shape, **branch), torch.Generator().manual_seed(seed))
    return tensor


def zeros_but(tensor: torch.Tensor, index: tuple[int, ...]) -> torch.Tensor:
    """``tensor`` with its ``[:, :, *index]`` tap set to zero: what must be zero everywhere."""
    rest = tensor.clone()
    rest[(slice(None), slice(None), *index)] = 0
    return rest


# --- variance_scaling -----------------------------------------------------------------------------


def test_the_truncation_constant_is_scipys() -> None:
    assert TRUNCATED_STD_AT_2 == pytest.approx(scipy.stats.truncnorm(-2, 2).std(), rel=1e-15)


FAN_OUT, FAN_IN = 300, 500


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["normal", "uniform", "truncated_normal"])
def test_variance_scaling_has_the_std_keras_and_jax_intend(mode: str, distribution: str) -> None:
    """Empirical std against √(scale/n), and the shape against Keras/JAX's definition of each distribution."""
    scale = 2.0
    n = {"fan_in": FAN_IN, "fan_out": FAN_OUT, "fan_avg": (FAN_IN + FAN_OUT) / 2}[mode]
    std = math.sqrt(scale / n)
    samples = draw(f"variance_scaling:scale={scale},mode={mode},distribution={distribution}", (FAN_OUT, FAN_IN)).flatten().numpy()
    # Keras/JAX: truncated_normal(−2, 2)·√(scale/n)/0.8796..., uniform(±√(3·scale/n)), normal(0, scale/n).
    reference = {
        "normal": scipy.stats.norm(scale=std),
        "uniform": scipy.stats.uniform(loc=-math.sqrt(3 * scale / n), scale=2 * math.sqrt(3 * scale / n)),
        "truncated_normal": scipy.stats.truncnorm(-2, 2, scale=std / 0.87962566103423978),
    }[distribution]
    assert reference.std() == pytest.approx(std, rel=1e-9)  # the reference itself has the intended std
    assert samples.std() == pytest.approx(std, rel=6 * math.sqrt(1 / samples.size))
    assert scipy.stats.kstest(samples, reference.cdf).pvalue > 1e-3


@pytest.mark.parametrize(
    ("spec", "general"),
    [
        ("lecun_normal", "variance_scaling:scale=1,mode=fan_in,distribution=normal"),
        ("lecun_uniform", "variance_scaling:scale=1,mode=fan_in,distribution=uniform"),
        ("xavier_uniform:gain=2", "variance_scaling:scale=4,mode=fan_avg,distribution=uniform"),
        ("xavier_normal:gain=0.5", "variance_scaling:scale=0.25,mode=fan_avg,distribution=normal"),
        ("kaiming_normal:mode=fan_out,gain=3", "variance_scaling:scale=9,mode=fan_out,distribution=normal"),
        ("kaiming_uniform:gain=2", "variance_scaling:scale=4,mode=fan_in,distribution=uniform"),
    ],
)
def test_the_classic_schemes_are_variance_scaling(spec: str, general: str) -> None:
    assert torch.equal(draw(spec, (FAN_OUT, FAN_IN), seed=5), draw(general, (FAN_OUT, FAN_IN), seed=5))


# --- delta_orthogonal and dirac ------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "centre"), [((16, 8, 3, 3), (1, 1)), ((8, 8, 5, 5), (2, 2)), ((6, 4, 3), (1,)), ((4, 4, 3, 3, 3), (1, 1, 1)), ((8, 4, 4, 4), (1, 1))])
def test_delta_orthogonal_is_orthogonal_at_the_centre_and_zero_elsewhere(shape: tuple[int, ...], centre: tuple[int, ...]) -> None:
    """Even kernels: the centre is tap (k − 1)//2, as TensorFlow's ConvolutionDeltaOrthogonal."""
    weight = draw("delta_orthogonal:gain=1.5", shape)
    middle = weight[(slice(None), slice(None), *centre)]
    assert torch.allclose(middle.T @ middle, 1.5**2 * torch.eye(shape[1], dtype=torch.float64), atol=1e-12)
    assert torch.count_nonzero(zeros_but(weight, centre)) == 0


def test_delta_orthogonal_with_fewer_outputs_has_orthogonal_rows() -> None:
    middle = draw("delta_orthogonal", (4, 8, 3, 3))[:, :, 1, 1]
    assert torch.allclose(middle @ middle.T, torch.eye(4, dtype=torch.float64), atol=1e-12)


def test_delta_orthogonal_on_a_matrix_is_torchs_orthogonal() -> None:
    expected = torch.empty(FAN_OUT, FAN_IN, dtype=torch.float64)
    torch.nn.init.orthogonal_(expected, gain=2.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(draw("delta_orthogonal:gain=2", (FAN_OUT, FAN_IN), seed=3), expected)


def test_delta_orthogonal_conv_scales_every_pixel_by_its_reported_sigma_w2() -> None:
    """The conv maps each pixel's channels by gain·Q, so mean h² / mean x² = gain²·c_in/c_out, which
    is fan_in·Var(W), the σ_w² its weight_variance gives the theory."""
    weight = draw("delta_orthogonal:gain=1.3", (12, 6, 3, 3))
    x = torch.randn(4, 6, 7, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    h = torch.nn.functional.conv2d(x, weight, padding=1)
    assert torch.allclose(h.pow(2).sum(dim=1), 1.3**2 * x.pow(2).sum(dim=1), rtol=1e-10)  # every pixel, borders too
    fan_in, fan_out = fans((12, 6, 3, 3))
    sigma_w2 = fan_in * scheme_from_spec("delta_orthogonal:gain=1.3").weight_variance(fan_in, fan_out)
    assert h.pow(2).mean().item() / x.pow(2).mean().item() == pytest.approx(sigma_w2, rel=1e-10)


@pytest.mark.parametrize(("shape", "groups"), [((8, 4, 3), 2), ((6, 6, 3, 3), 1), ((6, 2, 3, 3), 3), ((4, 4, 4, 4), 1), ((4, 2, 3, 3, 3), 2)])
def test_dirac_is_torchs_dirac(shape: tuple[int, ...], groups: int) -> None:
    expected = torch.empty(shape, dtype=torch.float64)
    torch.nn.init.dirac_(expected, groups)
    assert torch.equal(draw(f"dirac:groups={groups}", shape), expected)


def test_a_dirac_conv_passes_its_input_through() -> None:
    x = torch.randn(2, 5, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.nn.functional.conv2d(x, draw("dirac", (5, 5, 3, 3)), padding=1), x)


def test_dirac_on_a_matrix_is_the_identity_per_group() -> None:
    assert torch.equal(draw("dirac", (5, 3)), torch.eye(5, 3, dtype=torch.float64))
    assert torch.equal(draw("dirac:groups=2", (6, 2)), torch.cat([torch.eye(3, 2), torch.eye(3, 2)]).double())


def test_dirac_refuses_groups_that_do_not_divide_the_layer() -> None:
    with pytest.raises(InitbenchError, match=r"groups=4 does not divide the 6 output channels of layer \(Conv2d\)"):
        draw("dirac:groups=4", (6, 3, 3, 3))


@pytest.mark.parametrize("spec", ["delta_orthogonal", "dirac", "zero", "gpt2"])
def test_the_new_weight_schemes_refuse_to_fill_a_bias(spec: str) -> None:
    with pytest.raises(InitbenchError, match=f"init.bias: scheme '{spec}'"):
        validate_config({"model": {"depth": 2, "width": 4, "bias": True}, "init": {"scheme": "he", "bias": spec}}, "test")


# --- ZerO ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 4, 8, 64])
def test_hadamard_is_scipys(size: int) -> None:
    assert torch.equal(hadamard(size), torch.from_numpy(scipy.linalg.hadamard(size).astype(np.float64)))


def reference_zero(outputs: int, inputs: int) -> np.ndarray:
    """The ZerO authors' ``ZerO_Init_on_matrix`` (example_mnist.ipynb), transcribed with numpy."""
    if outputs <= inputs:
        return np.eye(outputs, inputs)
    clog_m = math.ceil(math.log2(outputs))
    p = 2**clog_m
    return np.eye(outputs, p) @ (scipy.linalg.hadamard(p) / 2 ** (clog_m / 2)) @ np.eye(p, inputs)


@pytest.mark.parametrize(("inputs", "outputs"), [(4, 4), (5, 3), (3, 5), (1, 1), (2, 3), (3, 8), (7, 9), (16, 10), (10, 33)])
def test_zero_matrices_are_the_reference_codes(inputs: int, outputs: int) -> None:
    assert np.allclose(zero_matrix(outputs, inputs).numpy(), reference_zero(outputs, inputs), rtol=0, atol=1e-15)


def test_zero_small_cases_by_hand() -> None:
    assert torch.equal(zero_matrix(4, 4), torch.eye(4, dtype=torch.float64))
    assert torch.equal(zero_matrix(3, 5), torch.tensor([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0]], dtype=torch.float64))
    # 3 → 5 units: m = ⌈log₂ 5⌉ = 3, the first 5 rows and 3 columns of H₈, over √8.
    signs = [[1, 1, 1], [1, -1, 1], [1, 1, -1], [1, -1, -1], [1, 1, 1]]
    assert torch.allclose(zero_matrix(5, 3), torch.tensor(signs, dtype=torch.float64) / math.sqrt(8), rtol=0, atol=1e-15)


def test_zero_convolutions_hold_the_matrix_at_tap_k_over_2() -> None:
    for shape, centre in [((5, 3, 3, 3), (1, 1)), ((4, 4, 4, 4), (2, 2)), ((6, 2, 5), (2,))]:
        weight = draw("zero", shape)
        assert torch.equal(weight[(slice(None), slice(None), *centre)], zero_matrix(shape[0], shape[1]))
        assert torch.count_nonzero(zeros_but(weight, centre)) == 0


def test_zero_draws_nothing_and_zeroes_a_branchs_last_layer() -> None:
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    weight = torch.empty(6, 6)
    scheme_from_spec("zero").sample_(weight, context_for((6, 6), position=2, branch_length=2, branch=1, branches=3), generator)
    assert torch.count_nonzero(weight) == 0
    scheme_from_spec("zero").sample_(weight, context_for((6, 6), position=1, branch_length=2, branch=1, branches=3), generator)
    assert torch.equal(weight, torch.eye(6))
    assert torch.equal(generator.get_state(), state)


def build_and_draw(arch: str, spec: str, seed: int, widths: list[int], inputs: int) -> torch.nn.Module:
    model = build_builtin(arch, RELU, widths, inputs, bias=True, norm="none", outputs=3)
    scheme = scheme_from_spec(spec).resolve(RELU)
    zeros = scheme_from_spec("zeros")
    initialize(model, Run(spec, seed, scheme, zeros), zeros, torch.Generator().manual_seed(seed))
    return model


def test_zero_resmlp_is_the_same_net_for_every_seed_and_each_block_is_the_identity() -> None:
    models = [build_and_draw("resmlp", "zero", seed, [8, 8, 8], inputs=5) for seed in (0, 1, 2)]
    for model in models[1:]:
        assert all(torch.equal(a, b) for a, b in zip(models[0].parameters(), model.parameters(), strict=True))
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    for block in models[0].blocks:
        assert torch.equal(block(x), x)
    assert torch.equal(models[0].stem[0].weight, zero_matrix(8, 5).float())  # 5 → 8 units: Hadamard


# --- GPT-2 -----------------------------------------------------------------------------------------


def nanogpt_draws(model: torch.nn.Module, n_layer: int, seed: int) -> dict[str, torch.Tensor]:
    """nanoGPT's rule, by parameter name: N(0, 0.02²), and 0.02/√(2·n_layer) for every c_proj.weight,
    drawn in parameter order from one generator (the weights only: biases are zeros and draw nothing)."""
    generator = torch.Generator().manual_seed(seed)
    expected = {}
    for name, parameter in model.named_parameters():
        if parameter.dim() >= 2:
            std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else 0.02
            expected[name] = torch.empty_like(parameter).normal_(mean=0.0, std=std, generator=generator)
    return expected


@pytest.mark.parametrize(("marked", "spec"), [(True, "gpt2"), (False, "gpt2:projections='*.c_proj',n_layer=3")])
def test_gpt2_draws_what_nanogpt_draws(marked: bool, spec: str) -> None:
    model = tiny_gpt(n_layer=3, marked=marked)
    zeros = scheme_from_spec("zeros")
    initialize(model, Run(spec, 4, scheme_from_spec(spec), zeros), zeros, torch.Generator().manual_seed(4))
    expected = nanogpt_draws(tiny_gpt(n_layer=3), n_layer=3, seed=4)
    assert set(expected) == {name for name, parameter in model.named_parameters() if parameter.dim() >= 2}
    for name, parameter in model.named_parameters():
        if name in expected:
            assert torch.equal(parameter, expected[name]), name
        elif ".ln_" in name or name.startswith("ln_f"):
            assert torch.equal(parameter, torch.ones_like(parameter) if name.endswith("weight") else torch.zeros_like(parameter))
        else:
            assert torch.count_nonzero(parameter) == 0, name  # biases: zeros


def test_gpt2_on_the_resmlp_shrinks_each_branchs_last_layer() -> None:
    model = build_and_draw("resmlp", "gpt2:std=0.5", 0, [64] * 4, inputs=64)
    stds = {context.module_path: parameter.std().item() for _, parameter, context in parameter_contexts(model) if context and context.role == "weight"}
    branch_last = [path for path in stds if path.endswith("branch.2")]
    assert len(branch_last) == 4
    for path, std in stds.items():
        expected = 0.5 / math.sqrt(4) if path in branch_last else 0.5
        assert std == pytest.approx(expected, rel=6 / math.sqrt(2 * 64 * 64 if path != "head.linear" else 2 * 64 * 3))


def test_gpt2_projections_need_n_layer() -> None:
    with pytest.raises(InitbenchError, match="projections and n_layer together"):
        scheme_from_spec("gpt2:projections='*.c_proj'")


# --- plugins ---------------------------------------------------------------------------------------


def test_plugin_specs_parse_with_their_options() -> None:
    assert parse_scheme_spec("tests.plugin_schemes:scaled_normal:std=2,x=a") == ("tests.plugin_schemes:scaled_normal", {"std": 2, "x": "a"})
    assert parse_scheme_spec("normal:std=2") == ("normal", {"std": 2})


def test_a_plugin_function_gets_the_documented_arguments_and_its_draws_land_in_the_model() -> None:
    plugin_schemes.CALLS.clear()
    model = build_and_draw("cnn", "tests.plugin_schemes:recording:tag=7", 3, [4, 6], inputs=2)
    contexts = [context for _, _, context in parameter_contexts(model) if context is not None and context.role == "weight"]
    assert [call[1] for call in plugin_schemes.CALLS] == contexts
    for (tensor, context, generator, options), (_, parameter, _) in zip(plugin_schemes.CALLS, [c for c in parameter_contexts(model) if c[2] and c[2].role == "weight"], strict=True):
        assert tensor is parameter and isinstance(context, ParamContext) and isinstance(generator, torch.Generator)
        assert options == {"tag": 7}
        assert torch.all(parameter == context.layer)


def test_a_plugin_class_is_used_as_it_is() -> None:
    scheme = scheme_from_spec("tests.plugin_schemes:HalfNormal:std=0.5")
    assert isinstance(scheme, plugin_schemes.HalfNormal) and scheme.std == 0.5
    assert scheme.spec() == "tests.plugin_schemes:HalfNormal:std=0.5"
    assert scheme.weight_variance(3, 4) == pytest.approx(0.25 * (1 - 2 / math.pi))
    assert scheme_from_spec("tests.plugin_schemes:scaled_normal").weight_variance(3, 4) is None


TINY = """
name: plugin
seeds: 2
device: cpu
model: {depth: 3, width: 16, activation: tanh}
init: {scheme: "tests.plugin_schemes:scaled_normal", std: 2}
input: {batch: 8}
"""


def test_a_plugin_run_reruns_from_its_config_and_draws_like_the_builtin_it_copies(cli, tmp_path: Path) -> None:
    """scaled_normal:std=2 is N(0, 4/fan_in) drawn as kaiming_normal:gain=2 draws it (std 2/4 = √(4/16) exactly)."""
    assert cli("run", write_config(tmp_path / "plugin.yaml", TINY), "--out", tmp_path / "a").exit_code == 0
    saved = (tmp_path / "a" / "config.yaml").read_text()
    assert "tests.plugin_schemes:scaled_normal" in saved
    assert cli("run", tmp_path / "a" / "config.yaml", "--out", tmp_path / "b").exit_code == 0
    assert (tmp_path / "a" / "layer_stats.csv").read_bytes() == (tmp_path / "b" / "layer_stats.csv").read_bytes()
    builtin = TINY.replace('"tests.plugin_schemes:scaled_normal", std: 2', "kaiming_normal, gain: 2")
    assert cli("run", write_config(tmp_path / "he.yaml", builtin), "--out", tmp_path / "he").exit_code == 0
    columns = ("seed", "layer", "mean", "std", "weight_std")
    plugin_rows = [{key: row[key] for key in columns} for row in read_csv(tmp_path / "a" / "layer_stats.csv")]
    assert plugin_rows == [{key: row[key] for key in columns} for row in read_csv(tmp_path / "he" / "layer_stats.csv")]
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["schemes"]["tests.plugin_schemes:scaled_normal:std=2"]["weight_variance"] is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.no_such_module:f", "Cannot import 'tests.no_such_module' for scheme plugin 'tests.no_such_module:f'"),
        ("tests.plugin_schemes:missing", "Scheme plugin 'tests.plugin_schemes:missing': module 'tests.plugin_schemes' has no attribute 'missing'."),
        ("tests.plugin_schemes:NOT_CALLABLE", "Scheme plugin 'tests.plugin_schemes:NOT_CALLABLE' is not callable."),
        ("tests.plugin_schemes:NotAScheme", "Scheme plugin 'tests.plugin_schemes:NotAScheme' is a class but not an initbench.schemes.base.InitScheme."),
        ("tests.plugin_schemes:failing", "(Linear) weight of shape [4, 4]: ValueError: no weights today"),
        ("tests.plugin_schemes:scaled_normal:sdt=1", "Scheme plugin 'tests.plugin_schemes:scaled_normal' cannot take options ['sdt']"),
        ("tests.plugin_schemes:first_row_only", "left 12 of 16 entries of blocks.0.0 (Linear) weight of shape [4, 4] unset (NaN)"),
        ("tests.plugin_schemes:returning", "returned a Tensor for blocks.0.0 (Linear) weight"),
        ("tests.plugin_schemes:exiting", "(Linear) weight of shape [4, 4]: SystemExit: 3"),
    ],
)
def test_bad_plugins_are_one_line_user_errors(cli, tmp_path: Path, spec: str, message: str) -> None:
    result = cli("compare", spec, "--depth", "2", "--width", "4", "--batch", "4", "--device", "cpu", "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    assert any(message in line for line in result.output.splitlines()), result.output


def test_a_gpt2_glob_that_names_no_module_is_refused_before_the_run(cli, tmp_path: Path) -> None:
    result = cli("compare", "gpt2:projections='*.nomatch',n_layer=2", "--depth", "2", "--width", "4", "--batch", "4", "model.arch=resmlp", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "projections '*.nomatch' matches no module" in result.stderr, result.output
    assert not (tmp_path / "out").exists()


def test_a_gpt2_spec_with_a_glob_reads_back() -> None:
    scheme = scheme_from_spec("gpt2:projections='*.c_proj',n_layer=3")
    assert scheme.spec() == "gpt2:projections='*.c_proj',n_layer=3"
    assert scheme_from_spec(scheme.spec()) == scheme


def test_an_unknown_scheme_name_points_at_plugins_too() -> None:
    with pytest.raises(InitbenchError, match="Did you mean 'xavier'") as raised:
        scheme_from_spec("xaviar")
    assert "package.module:function" in str(raised.value.hint)


def test_a_bare_glob_option_is_a_string_not_a_yaml_alias() -> None:
    scheme = scheme_from_spec("gpt2:projections=*.c_proj,n_layer=2")
    assert scheme.projections == "*.c_proj" and scheme_from_spec(scheme.spec()) == scheme


@pytest.mark.parametrize("spec", ["foo:bar", "myinit:fn"])
def test_an_unknown_name_with_a_colon_is_an_unknown_scheme_not_an_unreadable_option(spec: str) -> None:
    with pytest.raises(InitbenchError, match=f"Unknown scheme '{spec.partition(':')[0]}'") as caught:
        scheme_from_spec(spec)
    assert "package.module:function" in caught.value.hint


@pytest.mark.parametrize("scheme", ["dirac", "zero", "delta_orthogonal"])
def test_structured_schemes_refuse_an_embedding_table(cli, tmp_path: Path, scheme: str) -> None:
    result = cli("probe", "torch.nn:Embedding", "model.kwargs.num_embeddings=20", "model.kwargs.embedding_dim=8", "--input-shape", "4,3", "--tokens", "20", "--scheme", scheme, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "is a lookup table" in result.stderr, result.output
    assert not (tmp_path / "out").exists()
