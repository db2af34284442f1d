"""The module backend: real ``nn.Module``s, many runs at once, observed through forward hooks.

The stacked engine (:mod:`initbench.engines.stacked`) knows one network, the plain MLP. Everything
else (the built-in ``resmlp``, ``cnn`` and normalized nets, and a user's own module) runs here:

1. :mod:`.build`: each run (scheme, seed) builds its model on the CPU and draws every parameter
   with its scheme (:mod:`.initialize`: registration order, each weight then its bias, the
   stacked engine's draw order, so a plain MLP is the same network on either backend).
2. :mod:`.stack`: the runs' parameters are stacked and one copy of the model is called on each
   run's slice, under ``torch.func.vmap`` where the model allows it, one run at a time where not.
3. :mod:`.observer`: forward hooks reduce every observed call to its row's statistics as it
   happens; :mod:`.passes` runs the observed forward pass and the gradient pass.
"""

from initbench.engines.modules.build import build_model, build_stack, check_initialization, loss_directions, model_failed, module_inputs
from initbench.engines.modules.initialize import draw_by_rule, initialize
from initbench.engines.modules.observer import (
    Call,
    ObservedModule,
    Observer,
    RowStatistics,
    first_floating,
    observed_modules,
    saturation_rule,
    stacked_view,
)
from initbench.engines.modules.passes import ObservedPass, observe, observe_gradients, observing
from initbench.engines.modules.stack import StackedModules, run_each, vmap_obstacle

__all__ = [
    "Call", "ObservedModule", "ObservedPass", "Observer", "RowStatistics", "StackedModules", "build_model", "build_stack",
    "check_initialization", "draw_by_rule", "first_floating", "initialize", "loss_directions", "model_failed", "module_inputs",
    "observe", "observe_gradients", "observed_modules", "observing", "run_each", "saturation_rule", "stacked_view", "vmap_obstacle",
]
