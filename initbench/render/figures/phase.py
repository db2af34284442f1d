"""The order–chaos phase diagram: χ₁, the correlation depth ξ_c and the convergence depths over
(σ_w², σ_b²), with each run's scheme placed on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, PowerNorm, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

if TYPE_CHECKING:
    from initbench.theory.phase_diagram import PhaseDiagram


def cell_step(values: np.ndarray) -> float:
    """The width of a cell centred on each of evenly spaced ``values``; 1 for a single value, so a
    one-value axis (``--sb2 0.05``) is a visible band."""
    return float(values[1] - values[0]) if len(values) > 1 else 1.0


def cell_edges(values: np.ndarray) -> np.ndarray:
    """The ``len(values) + 1`` edges of cells centred on evenly spaced ``values`` (pcolormesh's flat shading)."""
    return np.append(values, values[-1] + cell_step(values)) - cell_step(values) / 2


def cell_rectangles(axes: Axes, xs: np.ndarray, ys: np.ndarray, mask: np.ndarray, **style: Any) -> None:
    """Draw the cells of a ``[len(ys), len(xs)]`` grid where ``mask`` holds (centred on the points)."""
    dx, dy = cell_step(xs), cell_step(ys)
    for row, column in zip(*np.nonzero(mask), strict=True):
        axes.add_patch(Rectangle((xs[column] - dx / 2, ys[row] - dy / 2), dx, dy, **style))


NO_FIXED_POINT = {"facecolor": "0.8", "edgecolor": "0.55", "hatch": "xx", "lw": 0}


NOT_SETTLED = {"facecolor": "white", "edgecolor": "crimson", "hatch": "///", "lw": 0}


def draw_chi_panel(
    figure: Figure, axes: Axes, diagram: PhaseDiagram, edges: tuple[np.ndarray, np.ndarray], positions: dict[str, float]
) -> list[Any]:
    """χ₁ at q*, blue (order) below 1 and red (chaos) above, with its χ₁ = 1 line and the schemes'
    σ_w² marked on σ_b² = 0; returns the legend's handles for the marks and the line."""
    sw2, sb2 = np.meshgrid(diagram.sw2, diagram.sb2)
    chi = np.ma.masked_invalid(diagram.chi1)
    finite_chi = chi.compressed()
    top = max(float(finite_chi.max()) if finite_chi.size else 2.0, 1.01)
    bottom = min(float(finite_chi.min()) if finite_chi.size else 0.0, 0.99)
    mesh = axes.pcolormesh(*edges, chi, cmap="RdBu_r", norm=TwoSlopeNorm(vcenter=1.0, vmin=bottom, vmax=top))
    figure.colorbar(mesh, ax=axes, label="χ₁ at q*")
    if finite_chi.size and finite_chi.min() < 1 < finite_chi.max() and min(sw2.shape) > 1:
        axes.contour(sw2, sb2, chi.filled(np.nan), levels=[1.0], colors="black", linewidths=2)
    axes.set_title(f"Order (blue) and chaos (red): {diagram.activation}")
    handles: list[Any] = []
    for index, (label, value) in enumerate(positions.items()):
        symbol = "o^sD"[index % 4]
        handles.append(axes.plot([value], [0.0], marker=symbol, color="gold", mec="black", ms=9, ls="none", label=label, clip_on=False)[0])
    handles.append(Line2D([], [], color="black", lw=2, label="χ₁ = 1 (edge of chaos)"))
    return handles


def draw_xi_panel(
    figure: Figure, axes: Axes, diagram: PhaseDiagram, edges: tuple[np.ndarray, np.ndarray], no_fixed_point: np.ndarray
) -> None:
    """ξ_c on a log colour scale; an infinite ξ_c (at χ₁ = 1) takes the top colour, the colorbar's arrow."""
    xi = np.where(no_fixed_point, np.nan, diagram.xi_c)
    finite_xi = xi[np.isfinite(xi) & (xi > 0)]
    if finite_xi.size:
        xi_top = float(finite_xi.max())
        norm = LogNorm(vmin=float(finite_xi.min()), vmax=xi_top if xi_top > finite_xi.min() else xi_top * 10)
        mesh = axes.pcolormesh(*edges, np.ma.masked_invalid(np.minimum(xi, xi_top)), cmap="viridis", norm=norm)
        figure.colorbar(mesh, ax=axes, label="ξ_c (layers)", extend="max" if np.isinf(xi).any() else "neither")
    axes.set_title("Correlation depth scale ξ_c (theory)")


def draw_depth_panels(
    figure: Figure,
    grid: Sequence[Axes],
    diagram: PhaseDiagram,
    edges: tuple[np.ndarray, np.ndarray],
    no_fixed_point: np.ndarray,
    depth: int,
) -> list[Any]:
    """The predicted (``grid[1]``) and measured (``grid[2]``) convergence depths on one colour scale
    with one colorbar, measured cells that never settled hatched red; returns the hatch's legend handle, if drawn."""
    # one scale for both panels, 0 (settled at once) to depth; the square root spreads the short depths
    norm = PowerNorm(0.5, vmin=0.0, vmax=float(depth))
    assert diagram.measured_depth is not None
    predicted = np.where(no_fixed_point, np.nan, np.minimum(diagram.predicted_depth, depth))
    measured = np.where(no_fixed_point, np.nan, diagram.measured_depth)
    grid[1].pcolormesh(*edges, np.ma.masked_invalid(predicted), cmap="viridis", norm=norm)
    mesh = grid[2].pcolormesh(*edges, np.ma.masked_invalid(measured), cmap="viridis", norm=norm)
    figure.colorbar(mesh, ax=[grid[1], grid[2]], label="layers until the correlation settles", extend="max")
    grid[1].set_title("Predicted convergence depth")
    grid[2].set_title(f"Measured convergence depth ({depth} layers)")
    not_settled = ~no_fixed_point & ~np.isfinite(diagram.measured_depth)
    if not not_settled.any():
        return []
    cell_rectangles(grid[2], diagram.sw2, diagram.sb2, not_settled, **NOT_SETTLED)
    return [Patch(**NOT_SETTLED, label=f"did not settle within {depth} layers")]


def phase_figure(diagram: PhaseDiagram, positions: dict[str, float], depth: int | None) -> Figure:
    """Heatmaps over (σ_w², σ_b²): χ₁ with its χ₁ = 1 line and the common schemes marked, and
    the correlation depth scale ξ_c; with measurements (``depth`` given), the predicted and the
    measured convergence depths side by side on one colour scale, with one colorbar.

    No cell is left blank: where q* is unbounded (no fixed point, so no χ₁, ξ_c or c*) cells are
    grey and cross-hatched; measured cells that never settled within ``depth`` layers are hatched
    red; a predicted depth beyond ``depth`` takes the top colour (the colorbar's arrow).
    """
    panels = 3 if diagram.measured_depth is not None else 2
    figure = Figure(figsize=(5.2 * panels, 5.0), layout="constrained")
    grid = figure.subplots(1, panels, squeeze=False)[0]
    edges = cell_edges(diagram.sw2), cell_edges(diagram.sb2)
    no_fixed_point = ~np.isfinite(diagram.q_star) | ~np.isfinite(diagram.chi1)
    handles = draw_chi_panel(figure, grid[0], diagram, edges, positions)
    if diagram.measured_depth is None:
        draw_xi_panel(figure, grid[1], diagram, edges, no_fixed_point)
    else:
        assert depth is not None
        handles += draw_depth_panels(figure, grid, diagram, edges, no_fixed_point, depth)
    if no_fixed_point.any():
        for axes in grid:
            cell_rectangles(axes, diagram.sw2, diagram.sb2, no_fixed_point, **NO_FIXED_POINT)
        handles.append(Patch(**NO_FIXED_POINT, label="no fixed point (q* unbounded)"))
    for axes in grid:
        axes.set_xlabel("σ_w²")
        axes.set_ylabel("σ_b²")
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize=8)
    return figure
