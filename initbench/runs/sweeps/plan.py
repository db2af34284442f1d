"""Planning a shard: which points it runs (``--shard I/N``) and which run together as one stack."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from initbench.config.run import Config
from initbench.core.errors import InitbenchError
from initbench.core.runtime import check_memory, resolve_device, resolve_dtype
from initbench.engines.choice import select
from initbench.engines.stacked import propagation_memory_estimate
from initbench.experiments.base import EXPERIMENTS, StackableExperiment
from initbench.experiments.propagation import Propagation
from initbench.runs.sweeps.grid import canonical


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the points ``index, index + count, ...`` of the sweep."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match or not 0 <= int(match[1]) < int(match[2]):
            raise InitbenchError(
                f"--shard {text}: give I/N with 0 ≤ I < N, for example 0/4.",
                hint="With a SLURM array, --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT and --array=0-(N-1).",
            )
        return cls(int(match[1]), int(match[2]))

    def select(self, total: int) -> list[int]:
        return list(range(self.index, total, self.count))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def labels(config: Config) -> list[str]:
    return [label for label, _ in config.init.build_schemes()]


def stack_key(config: Config) -> str | None:
    """Points with equal keys share a shape and can run stacked; None: this point runs alone.

    The key is the whole config except ``init`` (its scheme, schemes and the scheme's options),
    whose bias init and rules stay in. Every experiment that can measure and analyse separately
    (:class:`~initbench.experiments.base.StackableExperiment`) stacks.
    """
    if not issubclass(EXPERIMENTS.get(config.experiment), StackableExperiment):
        return None
    data = config.model_dump(mode="json")
    data["init"] = {"bias": config.init.bias, "rules": data["init"].get("rules")}
    data["experiment"] = EXPERIMENTS.canonical(config.experiment)
    # A scheme can move its runs off the stacked engine (constructor, lsuv): the stack runs on one engine.
    data["backend"] = select(config).backend
    return canonical(data)


def stacks(configs: Sequence[Config], indices: Iterable[int]) -> list[list[int]]:
    """``indices`` grouped into stacks of points that share a shape, in order of first point.

    A point whose scheme labels repeat one already in the stack (the same runs twice) starts a new one.
    """
    groups: list[list[int]] = []
    open_groups: dict[str, list[tuple[list[int], set[str]]]] = {}  # key -> (members, their labels)
    for index in indices:
        key = stack_key(configs[index])
        if key is None:
            groups.append([index])
            continue
        mine = set(labels(configs[index]))
        for members, taken in open_groups.setdefault(key, []):
            if not mine & taken:
                members.append(index)
                taken |= mine
                break
        else:
            members = [index]
            open_groups[key].append((members, set(mine)))
            groups.append(members)
    return groups


def fits_in_memory(configs: Sequence[Config], group: list[int]) -> bool:
    """Whether a stack's pass fits the device (each point alone was checked before anything ran).

    Only signal propagation has activations of width × batch per run; training nets are small.
    """

    config = configs[group[0]]
    if not issubclass(EXPERIMENTS.get(config.experiment), Propagation):
        return True
    runs = sum(len(labels(configs[index])) * configs[index].seeds for index in group)
    backward = getattr(EXPERIMENTS.get(config.experiment), "backward", False)
    estimate = propagation_memory_estimate(runs, config.input.batch, config.model.width, config.model.depth, backward, resolve_dtype(config.dtype))
    try:
        check_memory(estimate, resolve_device(config.device))
    except InitbenchError:
        return False
    return True
