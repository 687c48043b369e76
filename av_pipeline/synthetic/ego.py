"""The ego vehicle's drive: speed profile, lane keeping, planted behaviour events, and the
planner's intended path.

The ego follows the outer right lane with a gently varying speed. Planted *events* make the
driven path leave the nominal one: a ``swerve`` (a lateral excursion of about a metre and
back over about 2 s) or a ``hard_brake`` (speed dropping by about half and recovering). The
planner does not know about them: its path at each frame starts at the ego's actual pose and
follows the nominal plan, so planned and driven paths disagree exactly around the events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration import SE3
from av_pipeline.synthetic.route import Route

#: Time step of the internal trajectory grid (seconds).
GRID_STEP_S = 0.005
#: The planner's horizon and step (seconds).
PLAN_HORIZON_S = 3.0
PLAN_STEP_S = 0.1


@dataclass(frozen=True)
class EgoEvent:
    """A planted ego-behaviour event.

    Attributes:
        kind: ``"swerve"`` (amplitude = lateral metres, signed, + is left) or
            ``"hard_brake"`` (amplitude = speed drop in m/s).
        start_s: start time in seconds since the first frame.
        duration_s: length of the event.
        amplitude: see ``kind``.
    """

    kind: str
    start_s: float
    duration_s: float
    amplitude: float

    def profile(self, t_s: np.ndarray) -> np.ndarray:
        """0 outside the event, a raised-cosine bump peaking at ``amplitude`` inside."""
        phase = (np.asarray(t_s) - self.start_s) / self.duration_s
        inside = (phase >= 0.0) & (phase <= 1.0)
        return np.where(inside, self.amplitude * 0.5 * (1.0 - np.cos(2.0 * np.pi * np.clip(phase, 0.0, 1.0))), 0.0)


@dataclass(frozen=True, eq=False)
class EgoTrajectory:
    """The ego's driven and nominal trajectories on a fine time grid.

    Attributes:
        route: the road.
        grid_t_s: ``(G,)`` seconds since the first frame.
        s_m, d_m: ``(G,)`` driven road coordinates.
        nominal_s_m, nominal_d_m: ``(G,)`` the same without the events.
        events: the planted events.
        xy_m, yaw_rad: ``(G, 2)``, ``(G,)`` driven world pose (yaw unwrapped).
    """

    route: Route
    grid_t_s: np.ndarray
    s_m: np.ndarray
    d_m: np.ndarray
    nominal_s_m: np.ndarray
    nominal_d_m: np.ndarray
    events: tuple[EgoEvent, ...]
    xy_m: np.ndarray
    yaw_rad: np.ndarray

    @classmethod
    def build(
        cls,
        route: Route,
        lane_d_m: float,
        mean_speed_mps: float,
        duration_s: float,
        events: tuple[EgoEvent, ...],
        rng: np.random.Generator,
    ) -> EgoTrajectory:
        """Integrate the speed profile from ``s = 0`` over ``[-1 s, duration + horizon + 1 s]``."""
        t = np.arange(-1.0, duration_s + PLAN_HORIZON_S + 1.0, GRID_STEP_S)
        period = float(rng.uniform(8.0, 14.0))
        phase = float(rng.uniform(0.0, 2.0 * np.pi))
        nominal_v = mean_speed_mps + 1.2 * np.sin(2.0 * np.pi * t / period + phase)
        v = nominal_v.copy()
        d_offset = np.zeros_like(t)
        for event in events:
            if event.kind == "hard_brake":
                v = v - event.profile(t)
            elif event.kind == "swerve":
                d_offset = d_offset + event.profile(t)
            else:
                raise ValueError(f"unknown ego event kind {event.kind!r}; expected 'swerve' or 'hard_brake'")
        v = np.maximum(v, 1.0)

        def integrate(speed: np.ndarray) -> np.ndarray:
            s = np.concatenate([[0.0], np.cumsum((speed[1:] + speed[:-1]) / 2.0 * GRID_STEP_S)])
            return s - np.interp(0.0, t, s)  # s = 0 at t = 0

        s, nominal_s = integrate(v), integrate(nominal_v)
        d = lane_d_m + d_offset
        xy, _ = route.pose(s, d)
        heading = np.unwrap(np.arctan2(np.gradient(xy[:, 1]), np.gradient(xy[:, 0])))
        return cls(route, t, s, d, nominal_s, np.full_like(t, lane_d_m), tuple(events), xy, heading)

    # ------------------------------------------------------------------ queries
    def pose_arrays(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World ``(N, 3)`` positions (z = 0) and yaws ``(N,)`` at times ``t_s``."""
        t_s = np.asarray(t_s, dtype=np.float64).reshape(-1)
        x = np.interp(t_s, self.grid_t_s, self.xy_m[:, 0])
        y = np.interp(t_s, self.grid_t_s, self.xy_m[:, 1])
        yaw = np.interp(t_s, self.grid_t_s, self.yaw_rad)
        return np.column_stack([x, y, np.zeros_like(x)]), yaw

    def world_SE3_ego(self, t_s: float) -> SE3:
        """The ego pose at ``t_s`` seconds."""
        position, yaw = self.pose_arrays(np.array([t_s]))
        return SE3.from_yaw_translation(float(yaw[0]), position[0])

    def road_s(self, t_s: np.ndarray) -> np.ndarray:
        """Driven arc length at ``t_s``."""
        return np.interp(np.asarray(t_s, dtype=np.float64), self.grid_t_s, self.s_m)

    def speed_mps(self, t_s: np.ndarray) -> np.ndarray:
        """Driven speed along the road at ``t_s``."""
        return np.interp(np.asarray(t_s, dtype=np.float64), self.grid_t_s, np.gradient(self.s_m, GRID_STEP_S))

    def planned_path(self, t_s: float, rng: np.random.Generator | None = None) -> np.ndarray:
        """The planner's path at ``t_s``: ``(K, 4)`` rows ``dt_s, x, y, yaw`` in the world frame.

        It starts at the driven pose, follows the nominal speed profile, and returns to the
        nominal lateral offset within about a second (what a lane-keeping planner intends).
        ``rng`` adds a few centimetres of smooth planning noise.
        """
        dt = np.arange(0.0, PLAN_HORIZON_S + 1e-9, PLAN_STEP_S)
        now_s = np.interp(t_s, self.grid_t_s, self.s_m)
        now_d = np.interp(t_s, self.grid_t_s, self.d_m)
        nominal_s_now = np.interp(t_s, self.grid_t_s, self.nominal_s_m)
        s = now_s + np.interp(t_s + dt, self.grid_t_s, self.nominal_s_m) - nominal_s_now
        nominal_d = np.interp(t_s + dt, self.grid_t_s, self.nominal_d_m)
        d = nominal_d + (now_d - nominal_d[0]) * np.exp(-dt / 0.6)
        if rng is not None:
            d = d + rng.normal(0.0, 0.02) * dt / PLAN_HORIZON_S
        xy, _ = self.route.pose(s, d)
        _, yaw_now = self.pose_arrays(np.array([t_s]))
        heading = np.arctan2(np.gradient(xy[:, 1]), np.gradient(xy[:, 0]))
        heading[0] = yaw_now[0]
        return np.column_stack([dt, xy, heading])

    def driven_path(self, t_s: float) -> np.ndarray:
        """The driven path over the planner's horizon: ``(K, 4)`` rows ``dt_s, x, y, yaw`` (world)."""
        dt = np.arange(0.0, PLAN_HORIZON_S + 1e-9, PLAN_STEP_S)
        position, yaw = self.pose_arrays(t_s + dt)
        return np.column_stack([dt, position[:, :2], yaw])


def plan_ego_events(count: int, duration_s: float, rng: np.random.Generator) -> tuple[EgoEvent, ...]:
    """``count`` non-overlapping events inside ``[0.3 s, duration - 0.3 s]`` (fewer when the log is too short)."""
    events: list[EgoEvent] = []
    for _ in range(count):
        for _attempt in range(20):
            duration = min(float(rng.uniform(1.8, 2.6)), duration_s - 0.6)
            if duration < 1.0:
                break
            start = float(rng.uniform(0.3, duration_s - duration - 0.3))
            if all(start + duration + 1.0 < e.start_s or start > e.start_s + e.duration_s + 1.0 for e in events):
                if rng.random() < 0.5:
                    events.append(EgoEvent("swerve", start, duration, float(rng.choice([-1.0, 1.0])) * float(rng.uniform(0.8, 1.0))))
                else:
                    events.append(EgoEvent("hard_brake", start, duration, float(rng.uniform(3.5, 5.0))))
                break
    return tuple(sorted(events, key=lambda e: e.start_s))
