"""Mean-field theory as pure functions of an activation and (σ_w², σ_b²): Gaussian expectations,
the length and correlation maps, fixed points, χ₁, depth scales, critical gains, the phase
diagram. No model, no measurement.

After Poole et al. 2016 ("Exponential expressivity in deep neural networks through transient
chaos") and Schoenholz et al. 2017 ("Deep information propagation"), with ``Var(W_ij) =
σ_w²/fan_in`` and ``Var(b_i) = σ_b²``. Layers are numbered 1..depth; ``hˡ`` is the pre-activation,
``xˡ = φ(hˡ)``, and ``q`` always means a pre-activation variance. All arithmetic is float64.

May import :mod:`initbench.core` and :mod:`initbench.nets`. The package re-exports the functions of
its modules (quadrature, maps, fixed_points, propagate, gains, spectrum), so ``from initbench import theory;
theory.chi1(...)`` reads as the math does.
"""

from initbench.theory.fixed_points import (
    COLLAPSED_Q,
    FIXED_POINT_RTOL,
    GROWTH_STEP_Q,
    PHASE_TOL,
    UNBOUNDED_Q,
    DepthScales,
    Phase,
    correlation_fixed_point,
    depth_scales,
    fixed_point,
    fixed_point_phase,
    phase_of,
)
from initbench.theory.gains import GAIN_SQ_RANGE, critical_gain, variance_preserving_gain
from initbench.theory.maps import chi1, correlation_map, length_map
from initbench.theory.propagate import ForwardPrediction, propagate_backward, propagate_forward, propagate_residual
from initbench.theory.quadrature import (
    BIVARIATE_DEGREE,
    PANEL_RATIO,
    QUADRATURE_DEGREE,
    TAIL_SIGMAS,
    GaussianMoments,
    TensorFn,
    bivariate_gaussian_expectation,
    gaussian_expectation,
    gaussian_moments,
)
from initbench.theory.spectrum import (
    S1_OF_ENSEMBLE,
    WeightEnsemble,
    critical_point,
    derivative_moments,
    fuss_catalan_density,
    fuss_catalan_edge,
    fuss_catalan_moment,
    theory_max,
    theory_mean,
    theory_nvar,
    theory_variance,
)

__all__ = ['TensorFn', 'Phase', 'QUADRATURE_DEGREE', 'BIVARIATE_DEGREE', 'TAIL_SIGMAS', 'PANEL_RATIO', 'PHASE_TOL', 'FIXED_POINT_RTOL', 'UNBOUNDED_Q', 'COLLAPSED_Q', 'GROWTH_STEP_Q', 'GAIN_SQ_RANGE', 'gaussian_expectation', 'bivariate_gaussian_expectation', 'GaussianMoments', 'gaussian_moments', 'length_map', 'chi1', 'ForwardPrediction', 'propagate_forward', 'propagate_backward', 'fixed_point', 'correlation_map', 'correlation_fixed_point', 'DepthScales', 'depth_scales', 'phase_of', 'fixed_point_phase', 'variance_preserving_gain', 'critical_gain', 'propagate_residual', 'WeightEnsemble', 'S1_OF_ENSEMBLE', 'derivative_moments', 'theory_mean', 'theory_nvar', 'theory_variance', 'theory_max', 'critical_point', 'fuss_catalan_moment', 'fuss_catalan_edge', 'fuss_catalan_density']
