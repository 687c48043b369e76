"""The road centreline: straight segments and circular arcs, parametrised by arc length.

Every road feature and every actor is placed in *road coordinates* ``(s, d)``: ``s`` metres
along the centreline, ``d`` metres to its left. :class:`Route` maps them to the world frame
(x east, y north, z up) and gives the heading there. Outside the built range the centreline
continues straight, so a far-away actor always has a defined pose.

>>> import numpy as np
>>> route = Route.from_segments([(100.0, 0.0), (50.0 * np.pi / 2, 1 / 50.0)], start_s=-100.0)
>>> xy, heading = route.pose(np.array([0.0, 50.0 * np.pi / 2]), np.array([0.0, 0.0]))
>>> xy.round(6).tolist(), heading.round(6).tolist()
([[0.0, 0.0], [50.0, 50.0]], [0.0, 1.570796])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from av_pipeline.errors import ConfigError


@dataclass(frozen=True, eq=False)
class Route:
    """A planar centreline through ``(0, 0)`` heading +x at ``s = 0``.

    Attributes:
        starts_s: ``(K,)`` arc length where each segment starts (the first is ``start_s``).
        lengths_m: ``(K,)`` segment lengths.
        curvatures: ``(K,)`` signed curvature ``1 / radius`` (positive turns left).
        start_xy: ``(K, 2)`` centreline point at each segment start.
        start_heading_rad: ``(K,)`` heading at each segment start.
    """

    starts_s: np.ndarray
    lengths_m: np.ndarray
    curvatures: np.ndarray
    start_xy: np.ndarray
    start_heading_rad: np.ndarray

    @classmethod
    def from_segments(cls, segments: Sequence[tuple[float, float]], start_s: float = 0.0) -> Route:
        """Build from ``(length_m, curvature)`` pairs; the point at ``s = 0`` is the origin, heading +x.

        Raises:
            ConfigError: no segments, a non-positive length, or ``s = 0`` outside the segments.
        """
        if not segments:
            raise ConfigError("route: expected at least one (length_m, curvature) segment, got none")
        lengths = np.array([float(length) for length, _ in segments])
        curvatures = np.array([float(k) for _, k in segments])
        if (lengths <= 0).any():
            raise ConfigError(f"route: expected positive segment lengths, got {lengths.tolist()}")
        starts = start_s + np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
        if not starts[0] <= 0.0 <= starts[-1] + lengths[-1]:
            raise ConfigError(f"route: s = 0 must lie on the route [{starts[0]}, {starts[-1] + lengths[-1]}]")
        xy = np.zeros((len(lengths), 2))
        heading = np.zeros(len(lengths))
        for k in range(1, len(lengths)):  # integrate from the first segment, shift to put s = 0 at the origin later
            end_xy, end_heading = _advance(xy[k - 1], heading[k - 1], curvatures[k - 1], lengths[k - 1])
            xy[k], heading[k] = end_xy[0], end_heading[0]
        route = cls(starts, lengths, curvatures, xy, heading)
        origin_xy, origin_heading = route.centreline(np.array([0.0]))
        rotation = np.array([[np.cos(-origin_heading[0]), -np.sin(-origin_heading[0])], [np.sin(-origin_heading[0]), np.cos(-origin_heading[0])]])
        shifted = (xy - origin_xy[0]) @ rotation.T
        return cls(starts, lengths, curvatures, shifted, heading - origin_heading[0])

    @property
    def start_s(self) -> float:
        """First arc length of the built route."""
        return float(self.starts_s[0])

    @property
    def end_s(self) -> float:
        """Last arc length of the built route."""
        return float(self.starts_s[-1] + self.lengths_m[-1])

    def centreline(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centreline points ``(N, 2)`` and headings ``(N,)`` at arc lengths ``s`` ``(N,)``.

        Beyond either end the line continues straight along the end heading.
        """
        s = np.asarray(s, dtype=np.float64)
        k = np.clip(np.searchsorted(self.starts_s, s, side="right") - 1, 0, len(self.starts_s) - 1)
        ds = s - self.starts_s[k]
        # straight continuation before the first / after the last segment
        curvature = self.curvatures[k].copy()
        outside = (ds < 0) | (ds > self.lengths_m[k])
        curvature[outside & (k == 0) & (ds < 0)] = 0.0
        after = ds > self.lengths_m[k]
        if after.any():
            # past the last segment: advance to its end, then straight
            end_xy, end_heading = _advance(self.start_xy[k[after]], self.start_heading_rad[k[after]], self.curvatures[k[after]], self.lengths_m[k[after]])
            extra = ds[after] - self.lengths_m[k[after]]
            xy_after = end_xy + extra[:, None] * np.stack([np.cos(end_heading), np.sin(end_heading)], axis=1)
        xy, heading = _advance(self.start_xy[k], self.start_heading_rad[k], curvature, ds)
        if after.any():
            xy[after], heading[after] = xy_after, end_heading
        return xy, heading

    def pose(self, s: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points ``(N, 2)`` at road coordinates ``(s, d)`` and the centreline heading ``(N,)`` there."""
        xy, heading = self.centreline(s)
        d = np.broadcast_to(np.asarray(d, dtype=np.float64), heading.shape)
        normal = np.stack([-np.sin(heading), np.cos(heading)], axis=1)
        return xy + d[:, None] * normal, heading

    def curvature(self, s: np.ndarray) -> np.ndarray:
        """Signed curvature ``(N,)`` at arc lengths ``s`` (0 beyond the ends)."""
        s = np.asarray(s, dtype=np.float64)
        k = np.clip(np.searchsorted(self.starts_s, s, side="right") - 1, 0, len(self.starts_s) - 1)
        ds = s - self.starts_s[k]
        return np.where((ds < 0) | (ds > self.lengths_m[k]), 0.0, self.curvatures[k])


def _advance(xy: np.ndarray, heading: np.ndarray, curvature: np.ndarray, ds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move ``ds`` along a line (curvature 0) or arc from ``xy`` with ``heading``; vectorised."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    heading = np.asarray(heading, dtype=np.float64).reshape(-1)
    curvature = np.broadcast_to(np.asarray(curvature, dtype=np.float64), heading.shape)
    ds = np.broadcast_to(np.asarray(ds, dtype=np.float64), heading.shape)
    new_heading = heading + curvature * ds
    straight = np.abs(curvature) < 1e-12
    safe = np.where(straight, 1.0, curvature)
    dx = np.where(straight, ds * np.cos(heading), (np.sin(new_heading) - np.sin(heading)) / safe)
    dy = np.where(straight, ds * np.sin(heading), (np.cos(heading) - np.cos(new_heading)) / safe)
    return xy + np.stack([dx, dy], axis=1), new_heading


def random_route(rng: np.random.Generator, length_before_m: float, length_after_m: float) -> Route:
    """A route of straight stretches and gentle arcs (radius 80-250 m, 15-60 degrees).

    The stretch from ``-length_before_m`` to 40 m is straight, so the log starts on a straight road.
    """
    segments: list[tuple[float, float]] = [(length_before_m + 40.0, 0.0)]
    total = 40.0
    while total < length_after_m:
        if rng.random() < 0.5:
            length = float(rng.uniform(60.0, 160.0))
            segments.append((length, 0.0))
        else:
            radius = float(rng.uniform(80.0, 250.0))
            angle = float(np.deg2rad(rng.uniform(15.0, 60.0)))
            sign = 1.0 if rng.random() < 0.5 else -1.0
            length = radius * angle
            segments.append((length, sign / radius))
        total += length
    segments.append((200.0, 0.0))
    return Route.from_segments(segments, start_s=-length_before_m)
