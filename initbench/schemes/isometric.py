"""Schemes that start a network at an isometry: delta-orthogonal, dirac and ZerO.

Each puts a matrix at the centre tap of a convolution's kernel and zeros everywhere else, so that at
init every conv layer maps each pixel's channels by that matrix alone: an orthogonal matrix
(delta-orthogonal), the identity (dirac) or ZerO's identity and Hadamard matrices. On a 2-D weight
the "kernel" is the matrix itself. None of them fills a bias, and only delta-orthogonal draws
anything from the generator.

Which tap is the centre of an even-sized kernel (size k) follows each scheme's reference code:
index (k − 1)//2 for delta-orthogonal (TensorFlow's ``ConvolutionDeltaOrthogonal``, Xiao et al.'s
implementation), k//2 for dirac (``torch.nn.init.dirac_``) and for ZerO (its Algorithm 2). For the
usual odd kernels both are the middle one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pydantic import Field

from initbench.core.errors import InitbenchError
from initbench.nets.activations import Activation
from initbench.schemes.base import SCHEMES, Gain, InitScheme, resolve_gain

if TYPE_CHECKING:
    from initbench.nets.architectures import ParamContext


def where(context: ParamContext) -> str:
    """The parameter named for an error: ``blocks.0.0 (Conv2d) weight of shape [8, 4, 3, 3]``."""
    return f"{context.module_path or 'the model'} ({context.module_type}) {context.role} of shape {list(context.shape)}"


def centre_tap(tensor: torch.Tensor, centre: str) -> torch.Tensor:
    """The ``[out, in]`` slice of a weight ``[out, in, *kernel]`` at the kernel's centre tap (a view).

    ``centre`` is ``lower`` (index (k − 1)//2) or ``upper`` (k//2): they differ only for even k.
    A 2-D weight is its own centre.
    """
    offset = 1 if centre == "lower" else 0
    return tensor[(slice(None), slice(None), *((size - offset) // 2 for size in tensor.shape[2:]))]


#: Lookup tables, not maps: row i is token i's vector, so an identity (or a block of one) would give
#: every token past the width the zero vector.
LOOKUP_TABLES = ("Embedding", "EmbeddingBag")


def needs_matrix(scheme: str, tensor: torch.Tensor, context: ParamContext) -> None:
    """Refuse what these structured schemes cannot fill: a 1-D tensor, or an embedding's table."""
    if tensor.dim() < 2:
        raise InitbenchError(
            f"Scheme {scheme} fills weights of two or more dimensions; {where(context)} has {tensor.dim()}.",
            hint="Use another scheme for this model.",
        )
    if context.module_type in LOOKUP_TABLES:
        raise InitbenchError(
            f"Scheme {scheme} builds layers that pass their input on; {where(context)} is a lookup table, whose rows would be mostly zero.",
            hint="Give the embedding a scheme of its own with init.rules, for example {match: Embedding, scheme: 'normal:std=0.02'}.",
        )


@SCHEMES.register("delta_orthogonal")
class DeltaOrthogonal(InitScheme):
    r"""Xiao et al. (2018): an orthogonal matrix at a conv kernel's centre, zeros elsewhere.

    From "Dynamical Isometry and a Mean Field Theory of CNNs: How to Train 10,000-Layer Vanilla
    Convolutional Neural Networks" (Xiao, L. et al., 2018), Algorithm 2. For a weight
    ``[c_out, c_in, k, k]``

    .. math::
        W[:, :, c, c] = \text{gain} \cdot Q, \qquad W[:, :, i, j] = 0 \text{ elsewhere}

    with Q drawn as ``torch.nn.init.orthogonal_`` draws it (QR of a Gaussian matrix), so
    :math:`Q^\top Q = I` when c_out ≥ c_in (the paper's case) and :math:`Q Q^\top = I` otherwise.
    The centre tap is c = (k − 1)//2, as in TensorFlow's ``ConvolutionDeltaOrthogonal``. A 2-D
    weight gets plain ``orthogonal`` (the same draws).

    Its variance is the mean of W_ij² over the whole kernel, gain²/max(fan_in, fan_out), as
    ``orthogonal`` reports: the entries are not identically distributed (the centre holds them
    all), but σ_w² = fan_in·that is gain²·c_in/c_out, the factor by which the centre matrix scales
    each pixel's squared norm, which is what the length map needs.

    Also known as delta-orthogonal; TensorFlow's ``convolutional_delta_orthogonal``.

    Args:
        gain: a number (default 1), ``auto``, ``preserving`` or ``critical``.

    Examples:
        >>> DeltaOrthogonal(gain=2.0).weight_variance(fan_in=9 * 16, fan_out=9 * 32)  # 4/288
        0.013888888888888888
        >>> # init: {scheme: delta_orthogonal, gain: auto}   (tanh: 5/3)
    """

    formula = "W[:, :, c, c] = gain·Q (QᵀQ = I), W = 0 at every other tap;  Var = gain²/max(fan_in, fan_out)"
    fills_bias = False
    no_bias_reason = "puts a matrix at a kernel's centre: it needs a weight of two or more dimensions"
    gain: Gain = 1.0

    def resolve(self, activation: Activation) -> InitScheme:
        return self.model_copy(update={"gain": resolve_gain(self.gain, activation)})

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        needs_matrix("delta_orthogonal", tensor, context)
        tensor.zero_()
        torch.nn.init.orthogonal_(centre_tap(tensor, "lower"), gain=float(self.gain), generator=generator)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return float(self.gain) ** 2 / max(fan_in, fan_out)


@SCHEMES.register("dirac")
class Dirac(InitScheme):
    r"""The Dirac delta kernel (``torch.nn.init.dirac_``): a conv layer that passes its inputs through.

    For a weight ``[c_out, c_in, *kernel]`` (1-D, 2-D or 3-D convolutions) and ``groups`` g, each
    group's output channel d copies input channel d at the kernel's centre tap k//2, for d up to
    min(c_out/g, c_in), and every other entry is 0:

    .. math::
        W[g' \cdot c_\text{out}/g + d,\ d,\ k/2, \dots] = 1

    A 2-D weight is a kernel with no spatial extent, whose delta is the (partial) identity matrix,
    so ``dirac`` fills it as ``identity`` does (with ``groups``, one partial identity per group of
    rows). Deterministic: it draws nothing, and its entries have no i.i.d. variance.

    Also known as identity init for convolutions (Zagoruyko & Komodakis, 2017, "DiracNets").

    Args:
        groups: the convolution's groups; c_out must be divisible by it (default 1).

    Examples:
        >>> Dirac(groups=2).weight_variance(fan_in=4, fan_out=8) is None
        True
        >>> # init: {scheme: dirac}
    """

    formula = "W[d, d, k//2, …] = 1 for d < min(c_out/groups, c_in) in each group, else 0"
    fills_bias = False
    no_bias_reason = "puts a delta at a kernel's centre: it needs a weight of two or more dimensions"
    trial_draw = False
    groups: int = Field(default=1, ge=1)

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        needs_matrix("dirac", tensor, context)
        if tensor.dim() > 5:
            raise InitbenchError(f"Scheme dirac fills 1-D, 2-D and 3-D convolutions and matrices; {where(context)} has {tensor.dim()} dimensions.")
        if tensor.shape[0] % self.groups:
            raise InitbenchError(f"Scheme dirac:groups={self.groups} does not divide the {tensor.shape[0]} output channels of {where(context)}.", hint="Give the layer's own groups.")
        # A matrix is a kernel of size 1: dirac_ then writes the identity through the view.
        torch.nn.init.dirac_(tensor.unsqueeze(-1) if tensor.dim() == 2 else tensor, self.groups)

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return None


def hadamard(size: int) -> torch.Tensor:
    """Sylvester's Hadamard matrix of order ``size`` (a power of 2), in float64.

    H₁ = [1], H₂ₙ = [[Hₙ, Hₙ], [Hₙ, −Hₙ]]: entries ±1 and Hₙ Hₙᵀ = n·I (the matrix
    ``scipy.linalg.hadamard`` builds).
    """
    if size < 1 or size & (size - 1):
        raise ValueError(f"Sylvester's construction gives orders that are powers of 2, not {size}")
    matrix = torch.ones(1, 1, dtype=torch.float64)
    while matrix.shape[0] < size:
        matrix = torch.cat([torch.cat([matrix, matrix], dim=1), torch.cat([matrix, -matrix], dim=1)], dim=0)
    return matrix


def zero_matrix(outputs: int, inputs: int) -> torch.Tensor:
    """ZerO's matrix for a layer from ``inputs`` to ``outputs`` units (Algorithm 1), in float64.

    outputs ≤ inputs: the (partial) identity I*. outputs > inputs: I*·H·I* / √(2^m), the top-left
    ``outputs × inputs`` block of the Hadamard matrix H of order 2^m, m = ⌈log₂ outputs⌉, scaled
    to orthonormal columns (the authors' ``ZerO_Init_on_matrix``).
    """
    if outputs <= inputs:
        return torch.eye(outputs, inputs, dtype=torch.float64)
    m = (outputs - 1).bit_length()  # ⌈log₂ outputs⌉, exactly
    return hadamard(2**m)[:outputs, :inputs] / 2 ** (m / 2)


@SCHEMES.register("zero", aliases=("ZerO",))
class ZerO(InitScheme):
    r"""Zhao et al. (2021) ZerO: deterministic identity and Hadamard matrices, only zeros and ones.

    From "ZerO Initialization: Initializing Neural Networks with only Zeros and Ones" (Zhao, J.,
    Schäfer, F. & Anandkumar, A., 2021), Algorithm 1, as the authors' reference code
    (github.com/jiaweizzhao/ZerO-initialization, ``ZerO_Init_on_matrix``) computes it. For a layer
    from P_in to P_out units:

    .. math::
        W = \begin{cases} I^* & P_\text{out} \le P_\text{in} \\
                          2^{-m/2}\, I^* H_m I^* & P_\text{out} > P_\text{in},\ m = \lceil \log_2 P_\text{out} \rceil
            \end{cases}

    where I* is the (partial) identity of the needed shape and H_m the Sylvester Hadamard matrix of
    order 2^m. The factor is the reference code's, 2^(−m/2), which makes 2^(−m/2)·H_m orthogonal;
    some statements of Algorithm 1 write c = 2^(−(m−1)/2), √2 larger. A convolution gets that
    matrix (of its channels) at the kernel's centre tap k//2 and zeros elsewhere (Algorithm 2).
    In a residual net, the last weight layer of each marked residual branch is zero, so every
    block starts as the identity (the paper's ResNet setting).

    Deterministic: it draws nothing from the generator, so every seed gives the same network.

    Also known as ZerO.

    Examples:
        >>> zero_matrix(3, 2)  # more outputs: the Hadamard block over √4
        tensor([[ 0.5000,  0.5000],
                [ 0.5000, -0.5000],
                [ 0.5000,  0.5000]], dtype=torch.float64)
        >>> # init: {scheme: zero}
    """

    formula = "W = I* (P_out ≤ P_in), 2^(−m/2)·I*·H_m·I* (P_out > P_in, m = ⌈log₂ P_out⌉); kernel centre; last layer of a residual branch 0"
    fills_bias = False
    no_bias_reason = "puts a matrix at a kernel's centre: it needs a weight of two or more dimensions (ZerO's biases are 0: init.bias: zeros)"

    def sample_(self, tensor: torch.Tensor, context: ParamContext, generator: torch.Generator | None) -> None:
        needs_matrix("zero", tensor, context)
        tensor.zero_()
        if context.position is not None and context.position == context.branch_length:
            return  # the branch's last layer: the block starts as the identity
        centre_tap(tensor, "upper").copy_(zero_matrix(tensor.shape[0], tensor.shape[1]))

    def weight_variance(self, fan_in: int, fan_out: int) -> float | None:
        return None

