"""Small factories that ``initbench probe`` imports by name in the tests (``tests.probe_models:small_mlp``)."""

import torch
from torch import nn


def small_mlp() -> nn.Module:
    """Linear(5 → 7), tanh, Linear(7 → 3), with torch's default init."""
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


class CausalSelfAttention(nn.Module):
    """nanoGPT's attention, without the causal mask (the init does not see it): c_attn, then c_proj."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x):
        batch, tokens, channels = x.shape
        q, k, v = self.c_attn(x).split(channels, dim=2)
        q, k, v = (t.view(batch, tokens, self.n_head, channels // self.n_head).transpose(1, 2) for t in (q, k, v))
        attention = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(attention.transpose(1, 2).reshape(batch, tokens, channels))


class MLP(nn.Module):
    """nanoGPT's MLP: c_fc (4× wider), GELU, c_proj."""

    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class GPTBlock(nn.Module):
    """x ← x + attn(ln_1(x)); x ← x + mlp(ln_2(x)). With ``marked``, attn and mlp are residual branches."""

    def __init__(self, n_embd: int, n_head: int, marked: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)
        self.attn.residual_branch = self.mlp.residual_branch = marked

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):
    """A nanoGPT-shaped model: token and position embeddings, ``n_layer`` blocks, final LayerNorm, lm_head."""

    def __init__(self, vocab_size: int = 32, block_size: int = 8, n_layer: int = 3, n_head: int = 2, n_embd: int = 16, marked: bool = True) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList(GPTBlock(n_embd, n_head, marked) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)

    def forward(self, tokens):
        x = self.wte(tokens) + self.wpe(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def tiny_gpt(**kwargs) -> nn.Module:
    """A :class:`TinyGPT`; ``marked=False`` leaves its residual branches unmarked (use gpt2's ``projections``)."""
    return TinyGPT(**kwargs)
class MarkedBranch(nn.Sequential):
    """A residual branch, marked as initbench finds them."""

    residual_branch = True


class ResidualBlock(nn.Module):
    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        for index in range(layers):
            modules += [nn.ReLU()] if index else []
            modules.append(nn.Linear(width, width))
        self.branch = MarkedBranch(*modules)

    def forward(self, x):
        return x + self.branch(x)


def residual_mlp(width: int = 8, blocks: int = 3, branch_layers: int = 3, outputs: int = 2) -> nn.Module:
    """``blocks`` residual blocks x + F(x), F of ``branch_layers`` Linear layers with ReLU between (m = branch_layers),
    then a Linear(width → outputs) head outside every branch."""
    return nn.Sequential(*(ResidualBlock(width, branch_layers) for _ in range(blocks)), nn.Linear(width, outputs))


def tanh_relu_mlp() -> nn.Module:
    """Linear(16 → 32), tanh, Linear(32 → 32), ReLU, Linear(32 → 8): mixed activations for the LSUV tests."""
    return nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8))


def small_cnn() -> nn.Module:
    """Conv(3 → 8, 3×3), ReLU, Conv(8 → 8, 3×3), tanh, flatten, Linear(8·4·4 → 5), on 3 × 8 × 8 images."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5)
    )


class ScaledOutput(nn.Module):
    """Linear(4 → 3), its output multiplied by ``scale`` in forward, past every module."""

    def __init__(self, scale: float = float("nan")) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * self.scale
