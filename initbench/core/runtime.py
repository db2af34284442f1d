"""Where and how a run computes: seeds derived per stream, device and dtype by name, and the
memory a device has free (checked before anything large is allocated).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import os
from dataclasses import dataclass

import torch

from initbench.core.errors import InitbenchError


def derive_seed(seed: int, stream: str) -> int:
    """A seed for a named random stream of run ``seed`` (e.g. its inputs), independent of the others.

    Hashing keeps streams apart: seeds 0 and 1 must not share draws the way ``seed + k`` schemes can.
    """
    digest = hashlib.blake2b(f"{seed}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def host_buffer(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A CPU tensor to draw into, pinned when it will be copied to a GPU (faster transfers)."""
    return torch.empty(shape, dtype=dtype, pin_memory=device.type == "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when torch sees a GPU, else CPU; asking for CUDA without one is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InitbenchError("--device cuda was asked for, but torch sees no CUDA device.", hint="Use --device cpu, or auto to pick what is there.")
    return torch.device(name)


def resolve_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "float64": torch.float64}[name]


def available_memory(device: torch.device) -> int:
    """Bytes free for new tensors on ``device`` (MemAvailable on Linux for the CPU)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


#: mallopt's parameter number for the mmap threshold (glibc's malloc.h), and the threshold set:
#: glibc's default before its dynamic raising.
M_MMAP_THRESHOLD, FIXED_MMAP_THRESHOLD = -3, 128 * 1024


@functools.cache
def unmap_large_blocks_on_free() -> bool:
    """Have glibc's malloc serve every block over 128 KiB by mmap, returned to the system on free
    (``mallopt(M_MMAP_THRESHOLD, 128 KiB)``, which also stops glibc raising that threshold). Once
    per process; False where the C library is not glibc.

    Why: glibc raises its mmap threshold to the size of each large block freed, so later blocks of
    that size come from the heap, which it rarely gives back. A pass that allocates and frees
    activations layer after layer (the module backend's hooks keep none) then leaves a peak RSS
    that still grows with depth: 504 → 1242 MiB from depth 100 to 400 (mlp × 256, batch 512, 4
    seeds), against 368 → 755 MiB with the threshold fixed, where the growth is the parameters.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    return bool(mallopt is not None and mallopt(M_MMAP_THRESHOLD, FIXED_MMAP_THRESHOLD))


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of a run: ``device`` for tensors on the compute device, ``host`` for what stays in CPU memory."""

    device: int
    host: int


def check_memory(estimate: MemoryEstimate | int, device: torch.device, hint: str = "Reduce input.batch, model.width, model.depth, the number of schemes or seeds.") -> None:
    """Refuse, before allocating anything, a run that would not fit in free memory.

    An ``int`` estimate is bytes on ``device``. On the CPU, device and host bytes share one memory.
    """
    if isinstance(estimate, int):
        estimate = MemoryEstimate(estimate, 0)
    needs = [(device, estimate.device + estimate.host)] if device.type == "cpu" else [(device, estimate.device), (torch.device("cpu"), estimate.host)]
    for where, size in needs:
        free = available_memory(where)
        if size > 0.9 * free:
            raise InitbenchError(f"This run needs about {format_bytes(size)} of memory, but {where.type} has {format_bytes(free)} free.", hint=hint)


def format_bytes(size: int) -> str:
    """``size`` bytes for people: ``3.2 GiB``, ``1.5e+06 GiB``."""
    gib = size / 2**30
    return f"{gib:.1f} GiB" if gib < 1e5 else f"{gib:.1e} GiB"
