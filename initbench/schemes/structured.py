"""Schemes whose entries are not independent draws of one distribution: orthogonal, identity,
PyTorch's constructor default (and ``constructor``: keep it), and GPT-2's scaled residual projections.
"""

from __future__ import annotations

import fnmatch
import math
from typing import TYPE_CHECKING

import torch
from pydantic import Field
from torch import nn

from initbench.core.errors import InitbenchError
from initbench.nets.activations import Activation
from initbench.schemes.base import SCHEMES, Gain, InitScheme, resolve_gain

if TYPE_CHECKING:
    from initbench.nets.architectures import ParamContext


@SCHEMES.register("orthogonal")
class Orthogonal(InitScheme):
    r"""Saxe et al. (2013): a (semi-)orthogonal matrix times ``gain``, via QR of a Gaussian matrix.

    From "Exact solutions to the nonlinear dynamics of learning in deep linear neural networks"
    (Saxe, A. et al., 2013); drawn by ``torch.nn.init.orthogonal_``, the weight flattened to
    ``[out, in·Πkernel]``:

    .. math::
        W = \text{gain} \cdot Q, \qquad Q^\top Q = I \text{ (tall) or } Q Q^\top = I \text{ (wide)}

    Its variance is the mean of W_ij², gain²/max(fan_in, fan_out); the entries are identically
    distributed but not independent.

    Args:
        gain: a number (default 1), ``auto``, ``preserving`` or ``critical``.

    Examples:
        >>> Orthogonal(gain=2.0).weight_variance(fan_in=100, fan_out=400)
        0.01
    """

    formula = "W = gain·Q,  QᵀQ = I;  Var = gain²/max(fan_in, fan_out)"
    fills_bias = False
    gain: Gain = 1.0

    def resolve(self, activation: Activation) -> InitScheme:
        return self.model_copy(update={"gain": resolve_gain(self.gain, activation)})

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        torch.nn.init.orthogonal_(tensor, gain=float(self.gain), generator=generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        # Orthonormal rows (or columns) have unit norm spread over max(fan_in, fan_out) entries.
        return float(self.gain) ** 2 / max(fan_in, fan_out)


@SCHEMES.register("identity", aliases=("eye",))
class Identity(InitScheme):
    """The identity matrix (``torch.nn.init.eye_``): deterministic, so it has no i.i.d. variance."""

    formula = "W = I"
    fills_bias = False

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        if tensor.dim() != 2:
            raise InitbenchError(
                f"Scheme identity fills 2-D weights only; {context.module_path or 'the model'} ({context.module_type}) has a weight of shape {list(context.shape)}.",
                hint="Use another scheme for this model (orthogonal works on conv weights too).",
            )
        torch.nn.init.eye_(tensor)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return None


@SCHEMES.register("default", aliases=("pytorch_default",))
class PyTorchDefault(InitScheme):
    r"""PyTorch's own ``nn.Linear`` init: kaiming_uniform with a = √5, i.e. U(±1/√fan_in).

    What ``nn.Linear.reset_parameters`` draws (``kaiming_uniform_(weight, a=math.sqrt(5))``, whose
    gain √(2/(1 + a²)) = √(1/3) makes the bound :math:`\sqrt{3}\cdot\text{gain}/\sqrt{\text{fan\_in}}`):

    .. math::
        W \sim \mathcal{U}\Big(-\frac{1}{\sqrt{\text{fan\_in}}}, \frac{1}{\sqrt{\text{fan\_in}}}\Big)

    For a bias it is the same U(±1/√fan_in) that ``nn.Linear`` gives its bias. Its variance is a
    third of LeCun's, 1/(3·fan_in), which is why deep nets left at it shrink their signal.

    Also known as ``pytorch_default``; ``variance_scaling`` with scale 1/3, mode fan_in, distribution
    uniform (the draws here are PyTorch's, bound 1/√fan_in). No options.

    Examples:
        >>> PyTorchDefault().weight_variance(fan_in=100, fan_out=10) == 1 / 300
        True
    """

    formula = "W ~ U(±1/√fan_in);  Var = 1/(3·fan_in)"

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        bound = 1.0 / math.sqrt(context.fan_in)
        tensor.uniform_(-bound, bound, generator=generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return 1.0 / (3.0 * fan_in)


@SCHEMES.register("gpt2")
class GPT2(InitScheme):
    r"""GPT-2's init, as nanoGPT writes it: N(0, 0.02²) for every weight, residual projections smaller.

    From "Language Models are Unsupervised Multitask Learners" (Radford, A. et al., 2019): "we scale
    the weights of residual layers at initialization by a factor of 1/√N where N is the number of
    residual layers", N = 2·n_layer (an attention and an MLP branch per block). Every weight,
    Linear and Embedding alike, is drawn from :math:`\mathcal{N}(0, \text{std}^2)`, except the
    residual output projections:

    .. math::
        W_\text{proj} \sim \mathcal{N}\Big(0, \big(\tfrac{\text{std}}{\sqrt{2 \cdot n_\text{layer}}}\big)^2\Big)

    (nanoGPT: ``normal_(p, mean=0.0, std=0.02/math.sqrt(2 * config.n_layer))`` on every
    ``c_proj.weight``). A projection is the last weight layer of a marked residual branch (a module
    with ``residual_branch = True``), and 2·n_layer the number of branches; for a model that marks
    none, ``projections`` is an ``fnmatch`` glob on the module path (``*.c_proj``) and ``n_layer``
    gives the count. Biases are 0 in GPT-2: keep ``init.bias: zeros``.

    Its weights are not identically distributed across the network, and the fans do not say which
    layer is a projection, so it reports no variance to the theory.

    Also known as the GPT-2 / nanoGPT init, "scaled init" (Megatron-LM's ``scaled_init_method_normal``).

    Args:
        std: the std of every weight but the projections (default 0.02).
        projections: a glob on module paths naming the residual output projections; then
            ``n_layer`` is required. Default: the marked residual branches' last layers.
        n_layer: the number of transformer blocks, with ``projections``.

    Examples:
        >>> GPT2(projections="*.c_proj", n_layer=12).std
        0.02
        >>> # init: {scheme: gpt2, projections: "*.c_proj", n_layer: 12}
    """

    formula = "W ~ N(0, std²);  residual projections N(0, std²/(2·n_layer)), std = 0.02"
    fills_bias = False
    no_bias_reason = "draws weights only (GPT-2 starts every bias at 0: init.bias: zeros)"
    std: float = Field(default=0.02, ge=0.0)
    projections: str | None = None
    n_layer: int | None = Field(default=None, ge=1)

    def model_post_init(self, context: object) -> None:
        if (self.projections is None) != (self.n_layer is None):
            raise ValueError("gpt2 needs projections and n_layer together (a glob such as '*.c_proj' and the number of blocks), or neither")

    def residual_branches(self, context: ParamContext) -> int | None:
        """2·n_layer if ``context`` is a residual output projection, else None."""
        if self.projections is not None:
            return 2 * self.n_layer if fnmatch.fnmatchcase(context.module_path, self.projections) else None  # type: ignore[operator]
        return context.branches if context.position is not None and context.position == context.branch_length else None

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        branches = self.residual_branches(context)
        tensor.normal_(0.0, self.std if branches is None else self.std / math.sqrt(branches), generator=generator)

    def finish_model(self, model: nn.Module) -> None:
        # A glob that names no module would leave every projection at the full std, silently.
        if self.projections is not None and not any(fnmatch.fnmatchcase(path, self.projections) for path, _ in model.named_modules()):
            raise InitbenchError(
                f"gpt2: projections '{self.projections}' matches no module of the model.",
                hint="Give a glob on the residual output projections' module paths, as `initbench probe` lists them (for example '*.c_proj').",
            )


@SCHEMES.register("constructor", aliases=("own",))
class Constructor(InitScheme):
    """The model's own init, as its constructor draws it (torch's defaults), with torch's RNG seeded by the run's seed.

    For ``model.arch: module`` and the other module-backed nets: nothing is redrawn, so this measures
    what a user's model does out of the box. ``initbench probe`` uses it when no ``--scheme`` is given.
    """

    formula = "W as constructed (torch.manual_seed(seed) before the model is built)"
    keeps_constructor_init = True
    fills_bias = False
    no_bias_reason = "draws nothing: it keeps a whole model's constructor init, weights and biases alike"

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        raise RuntimeError("the constructor scheme draws nothing: the model keeps its constructor's init")

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return None
