"""Mean-field theory as pure functions of an activation and (σ_w², σ_b²): Gaussian expectations,
the length and correlation maps, fixed points, χ₁, depth scales, critical gains, the phase
diagram. No model, no measurement.

May import :mod:`initbench.core` and :mod:`initbench.nets`. The package re-exports
:mod:`~initbench.theory.meanfield`, so ``from initbench import theory; theory.chi1(...)`` reads as
the math does.
"""

from initbench.theory.meanfield import (
    BIVARIATE_DEGREE,
    COLLAPSED_Q,
    FIXED_POINT_RTOL,
    GAIN_SQ_RANGE,
    GROWTH_STEP_Q,
    PANEL_RATIO,
    PHASE_TOL,
    QUADRATURE_DEGREE,
    TAIL_SIGMAS,
    UNBOUNDED_Q,
    DepthScales,
    ForwardPrediction,
    GaussianMoments,
    Phase,
    TensorFn,
    bivariate_gaussian_expectation,
    chi1,
    correlation_fixed_point,
    correlation_map,
    critical_gain,
    depth_scales,
    fixed_point,
    fixed_point_phase,
    gaussian_expectation,
    gaussian_moments,
    length_map,
    phase_of,
    propagate_backward,
    propagate_forward,
    propagate_residual,
    variance_preserving_gain,
)

__all__ = ['TensorFn', 'Phase', 'QUADRATURE_DEGREE', 'BIVARIATE_DEGREE', 'TAIL_SIGMAS', 'PANEL_RATIO', 'PHASE_TOL', 'FIXED_POINT_RTOL', 'UNBOUNDED_Q', 'COLLAPSED_Q', 'GROWTH_STEP_Q', 'GAIN_SQ_RANGE', 'gaussian_expectation', 'bivariate_gaussian_expectation', 'GaussianMoments', 'gaussian_moments', 'length_map', 'chi1', 'ForwardPrediction', 'propagate_forward', 'propagate_backward', 'fixed_point', 'correlation_map', 'correlation_fixed_point', 'DepthScales', 'depth_scales', 'phase_of', 'fixed_point_phase', 'variance_preserving_gain', 'critical_gain', 'propagate_residual']
