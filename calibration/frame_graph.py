"""A graph of named coordinate frames joined by static and time-stamped transforms.

Edges are stored in one direction, ``dst_SE3_src``, and are usable both ways (the graph
inverts them as needed). :meth:`FrameGraph.get` follows the shortest chain of edges (fewest
edges, breadth-first; ties go to the edge added first) and composes it, so only a tree of
measured transforms needs to be added:

>>> import numpy as np
>>> from calibration.se3 import SE3
>>> from calibration.trajectory import PoseTrajectory
>>> graph = FrameGraph()
>>> graph.add_static("ego", "lidar", SE3.from_yaw_translation(0.0, [1.0, 0.0, 1.8]))
>>> graph.add_static("ego", "camera", SE3.from_yaw_translation(0.0, [1.5, 0.0, 1.5]))
>>> graph.add_stamped("world", "ego", PoseTrajectory.from_poses(
...     [0, 100_000_000], [SE3.identity(), SE3.from_yaw_translation(0.0, [1.0, 0.0, 0.0])]))
>>> graph.path("camera", "lidar")
['camera', 'ego', 'lidar']
>>> graph.get("camera", "lidar").translation.tolist()
[-0.5, 0.0, 0.30000000000000004]
>>> graph.get("world", "lidar", 50_000_000).translation.tolist()
[1.5, 0.0, 1.8]
>>> # A point seen by the LiDAR at t=0, expressed in the camera frame at t=100 ms:
>>> graph.get_across_time("camera", 100_000_000, "lidar", 0, via="world").translation.tolist()
[-1.5, 0.0, 0.30000000000000004]
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np

from calibration.array_types import NDArrayFloat, NDArrayInt
from calibration.errors import CalibrationError, UnknownFrameError
from calibration.se3 import SE3
from calibration.trajectory import ExtrapolationPolicy, PoseTrajectory, check_extrapolation, check_timestamps_ns

#: ``format`` value written by :meth:`FrameGraph.to_dict`.
FRAME_GRAPH_FORMAT = "av_pipeline.frame_graph"
FRAME_GRAPH_VERSION = 1


@dataclass(frozen=True)
class FrameEdge:
    """One stored transform ``dst_SE3_src``: exactly one of ``static`` / ``stamped`` is set."""

    dst: str
    src: str
    static: SE3 | None = None
    stamped: PoseTrajectory | None = None

    @property
    def is_stamped(self) -> bool:
        return self.stamped is not None

    def describe(self) -> str:
        if self.stamped is None:
            return f"{self.dst}_SE3_{self.src} (static)"
        stamped = self.stamped
        return f"{self.dst}_SE3_{self.src} (time-stamped, {len(stamped)} samples in [{stamped.start_ns}, {stamped.end_ns}] ns)"


class FrameGraph:
    """Named frames joined by static and time-stamped rigid transforms.

    Frame names are non-empty strings. Between two frames there is at most one edge (in
    either direction); add it again with ``replace=True`` to change it. The graph may
    contain cycles, but nothing checks that the transforms around a cycle agree, so prefer
    a tree.

    Raises (from the query methods):
        UnknownFrameError: a frame that was never added; the message lists the known ones.
        CalibrationError: no chain of edges joins the two frames (the message names both
            frames' connected components), or a time-stamped edge queried without a time.
        ExtrapolationError: a time outside a time-stamped edge's range with
            ``extrapolation="error"``.
    """

    def __init__(self) -> None:
        self._frames: dict[str, None] = {}  # insertion-ordered set
        self._edges: dict[frozenset[str], FrameEdge] = {}
        self._neighbours: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ building
    def add_frame(self, name: str) -> None:
        """Add a frame with no edges yet (adding a known frame does nothing)."""
        _check_frame_name(name)
        if name not in self._frames:
            self._frames[name] = None
            self._neighbours[name] = []

    def add_static(self, dst: str, src: str, dst_SE3_src: SE3, *, replace: bool = False) -> None:
        """Add a fixed transform ``dst_SE3_src`` (maps points in ``src`` to ``dst``), adding both frames.

        Raises:
            CalibrationError: ``dst == src``, not an ``SE3``, or an edge between the two frames
                already exists and ``replace`` is false.
        """
        if not isinstance(dst_SE3_src, SE3):
            raise CalibrationError(
                f"add_static({dst!r}, {src!r}): expected an SE3 dst_SE3_src, got {type(dst_SE3_src).__name__}"
            )
        self._add_edge(FrameEdge(dst, src, static=dst_SE3_src), replace)

    def add_stamped(self, dst: str, src: str, dst_SE3_src: PoseTrajectory, *, replace: bool = False) -> None:
        """Add a time-stamped transform ``dst_SE3_src(t)``, e.g. ``add_stamped("world", "ego", world_SE3_ego)``.

        The trajectory is relabelled with ``dst`` / ``src`` so its errors name the pair.

        Raises:
            CalibrationError: as :meth:`add_static`, or the trajectory already names a
                different frame pair (a sign that ``dst`` and ``src`` are swapped).
        """
        if not isinstance(dst_SE3_src, PoseTrajectory):
            raise CalibrationError(
                f"add_stamped({dst!r}, {src!r}): expected a PoseTrajectory dst_SE3_src, got {type(dst_SE3_src).__name__}"
            )
        for given, expected, role in ((dst_SE3_src.dst_frame, dst, "dst"), (dst_SE3_src.src_frame, src, "src")):
            if given is not None and given != expected:
                raise CalibrationError(
                    f"add_stamped({dst!r}, {src!r}): the trajectory is labelled "
                    f"{dst_SE3_src.dst_frame}_SE3_{dst_SE3_src.src_frame}, its {role} frame {given!r} != {expected!r}"
                )
        self._add_edge(FrameEdge(dst, src, stamped=dst_SE3_src.with_frames(dst, src)), replace)

    def _add_edge(self, edge: FrameEdge, replace: bool) -> None:
        _check_frame_name(edge.dst)
        _check_frame_name(edge.src)
        if edge.dst == edge.src:
            raise CalibrationError(
                f"edge {edge.dst!r} -> {edge.src!r}: expected two different frames, got the same one twice"
            )
        key = frozenset((edge.dst, edge.src))
        if key in self._edges and not replace:
            raise CalibrationError(
                f"edge {edge.dst}_SE3_{edge.src}: the graph already has {self._edges[key].describe()}; "
                "pass replace=True to change it"
            )
        self.add_frame(edge.dst)
        self.add_frame(edge.src)
        if key not in self._edges:
            self._neighbours[edge.dst].append(edge.src)
            self._neighbours[edge.src].append(edge.dst)
        self._edges[key] = edge

    # ------------------------------------------------------------------ inspection
    @property
    def frames(self) -> tuple[str, ...]:
        """Frame names in the order they were added."""
        return tuple(self._frames)

    @property
    def edges(self) -> tuple[FrameEdge, ...]:
        """Stored edges, each in the direction it was added, in the order added."""
        return tuple(self._edges.values())

    def __contains__(self, frame: object) -> bool:
        return frame in self._frames

    def __iter__(self) -> Iterator[str]:
        return iter(self._frames)

    def __len__(self) -> int:
        return len(self._frames)

    def edge(self, a: str, b: str) -> FrameEdge:
        """The stored edge between ``a`` and ``b`` (in whichever direction it was added)."""
        self._require_frame(a)
        self._require_frame(b)
        try:
            return self._edges[frozenset((a, b))]
        except KeyError:
            raise CalibrationError(f"no edge between {a!r} and {b!r} (use path() / get() for chains)") from None

    def connected_components(self) -> list[list[str]]:
        """Groups of frames joined by chains of edges, each in insertion order."""
        seen: set[str] = set()
        components = []
        for frame in self._frames:
            if frame not in seen:
                component = self._component(frame)
                seen.update(component)
                components.append([f for f in self._frames if f in component])
        return components

    def path(self, dst: str, src: str) -> list[str]:
        """The frames on the shortest chain ``[dst, ..., src]`` that :meth:`get` composes."""
        self._require_frame(dst)
        self._require_frame(src)
        if dst == src:
            return [dst]
        previous: dict[str, str] = {src: src}
        queue = deque([src])
        while queue:
            frame = queue.popleft()
            for neighbour in self._neighbours[frame]:
                if neighbour not in previous:
                    previous[neighbour] = frame
                    if neighbour == dst:
                        chain = [dst]
                        while chain[-1] != src:
                            chain.append(previous[chain[-1]])
                        return chain
                    queue.append(neighbour)
        dst_component = sorted(self._component(dst))
        src_component = sorted(self._component(src))
        raise CalibrationError(
            f"no chain of transforms joins {dst!r} and {src!r}: {dst!r} is connected to {dst_component}, "
            f"{src!r} to {src_component}"
        )

    # ------------------------------------------------------------------ queries
    def get(
        self, dst: str, src: str, timestamp_ns: int | None = None, *, extrapolation: ExtrapolationPolicy = "error"
    ) -> SE3:
        """``dst_SE3_src``, composed along :meth:`path`, at ``timestamp_ns`` where edges are time-stamped.

        Args:
            dst, src: frame names.
            timestamp_ns: integer nanoseconds; required when the chain has a time-stamped
                edge, ignored by static ones.
            extrapolation: policy for time-stamped edges, see
                :data:`~calibration.trajectory.EXTRAPOLATION_POLICIES`.

        Raises:
            UnknownFrameError, CalibrationError, ExtrapolationError: see the class.
        """
        check_extrapolation(extrapolation)
        chain = self.path(dst, src)
        result = SE3.identity()
        # chain[0] = dst ... chain[-1] = src: accumulate a_SE3_src from the src end.
        for a, b in zip(reversed(chain[:-1]), reversed(chain[1:])):
            result = self._hop(a, b, timestamp_ns, extrapolation, (dst, src)).compose(result)
        return result

    def get_many(
        self, dst: str, src: str, timestamps_ns: NDArrayInt, *, extrapolation: ExtrapolationPolicy = "error"
    ) -> tuple[NDArrayFloat, NDArrayFloat]:
        """``dst_SE3_src`` at ``M`` times, vectorised (e.g. ``world_SE3_lidar`` per LiDAR point).

        Args:
            timestamps_ns: ``(M,)`` integer nanoseconds.

        Returns:
            ``(rotations (M, 3, 3), translations (M, 3))``.
        """
        check_extrapolation(extrapolation)
        query = check_timestamps_ns(timestamps_ns)
        chain = self.path(dst, src)
        rotations = np.broadcast_to(np.eye(3), (len(query), 3, 3)).copy()
        translations = np.zeros((len(query), 3))
        for a, b in zip(reversed(chain[:-1]), reversed(chain[1:])):
            hop_r, hop_t = self._hop_many(a, b, query, extrapolation, (dst, src))
            # a_SE3_src = a_SE3_b @ b_SE3_src
            translations = np.einsum("...ij,...j->...i", hop_r, translations) + hop_t
            rotations = hop_r @ rotations
        return rotations, translations

    def get_across_time(
        self,
        dst: str,
        dst_timestamp_ns: int,
        src: str,
        src_timestamp_ns: int,
        *,
        via: str,
        extrapolation: ExtrapolationPolicy = "error",
    ) -> SE3:
        """``dst(t_dst)_SE3_src(t_src)`` through a frame ``via`` that is fixed in time (usually ``"world"``).

        ``dst(t_dst)_SE3_via @ via_SE3_src(t_src)``: e.g. a point the LiDAR measured at
        ``t_lidar`` expressed in the camera frame at the camera's exposure time ``t_cam``,
        compensating the ego motion between the two:
        ``get_across_time("CAM_FRONT", t_cam, "LIDAR_TOP", t_lidar, via="world")``.
        """
        self._require_frame(via)
        dst_SE3_via = self.get(dst, via, dst_timestamp_ns, extrapolation=extrapolation)
        via_SE3_src = self.get(via, src, src_timestamp_ns, extrapolation=extrapolation)
        return dst_SE3_via.compose(via_SE3_src)

    def get_across_time_many(
        self,
        dst: str,
        dst_timestamp_ns: int,
        src: str,
        src_timestamps_ns: NDArrayInt,
        *,
        via: str,
        extrapolation: ExtrapolationPolicy = "error",
    ) -> tuple[NDArrayFloat, NDArrayFloat]:
        """:meth:`get_across_time` for ``M`` source times, vectorised: LiDAR de-skew to a reference time.

        Returns:
            ``(rotations (M, 3, 3), translations (M, 3))`` of ``dst(t_dst)_SE3_src(t_src[m])``.
        """
        self._require_frame(via)
        dst_SE3_via = self.get(dst, via, dst_timestamp_ns, extrapolation=extrapolation)
        rotations, translations = self.get_many(via, src, src_timestamps_ns, extrapolation=extrapolation)
        return dst_SE3_via.rotation @ rotations, translations @ dst_SE3_via.rotation.T + dst_SE3_via.translation

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``json.dumps`` works on it); exact: rotation matrices and integer times.

        Layout: ``{"format", "version", "frames": [...], "edges": [{"dst", "src", "type":
        "static", "rotation", "translation_m"} | {"dst", "src", "type": "stamped",
        "timestamps_ns", "rotations", "translations_m"}]}``.
        """
        edges = []
        for edge in self._edges.values():
            if edge.stamped is None:
                assert edge.static is not None
                edges.append(
                    {
                        "dst": edge.dst,
                        "src": edge.src,
                        "type": "static",
                        "rotation": edge.static.rotation.tolist(),
                        "translation_m": edge.static.translation.tolist(),
                    }
                )
            else:
                stamped = edge.stamped.to_dict()
                edges.append(
                    {
                        "dst": edge.dst,
                        "src": edge.src,
                        "type": "stamped",
                        "timestamps_ns": stamped["timestamps_ns"],
                        "rotations": stamped["rotations"],
                        "translations_m": stamped["translations_m"],
                    }
                )
        return {
            "format": FRAME_GRAPH_FORMAT,
            "version": FRAME_GRAPH_VERSION,
            "frames": list(self._frames),
            "edges": edges,
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> FrameGraph:
        """Inverse of :meth:`to_dict`.

        Raises:
            CalibrationError: another format or version, a missing key, an unknown edge type.
        """
        if value.get("format") != FRAME_GRAPH_FORMAT or value.get("version") != FRAME_GRAPH_VERSION:
            raise CalibrationError(
                f"frame graph dict: expected format {FRAME_GRAPH_FORMAT!r} version {FRAME_GRAPH_VERSION}, "
                f"got {value.get('format')!r} version {value.get('version')!r}"
            )
        graph = cls()
        for frame in value.get("frames", []):
            graph.add_frame(frame)
        for i, edge in enumerate(value.get("edges", [])):
            where = f"frame graph dict: edges[{i}]"
            kind = edge.get("type")
            required = {"static": ("dst", "src", "rotation", "translation_m"),
                        "stamped": ("dst", "src", "timestamps_ns", "rotations", "translations_m")}.get(kind)
            if required is None:
                raise CalibrationError(f"{where}: expected type 'static' or 'stamped', got {kind!r}")
            missing = [k for k in required if k not in edge]
            if missing:
                raise CalibrationError(f"{where}: missing keys {missing}, got keys {sorted(edge)}")
            if kind == "static":
                dst_SE3_src = SE3(np.asarray(edge["rotation"]), np.asarray(edge["translation_m"]))
                graph.add_static(edge["dst"], edge["src"], dst_SE3_src)
            else:
                graph.add_stamped(edge["dst"], edge["src"], PoseTrajectory.from_dict(edge))
        return graph

    def __repr__(self) -> str:
        return f"FrameGraph(frames={list(self._frames)}, edges={[e.describe() for e in self._edges.values()]})"

    # ------------------------------------------------------------------ internals
    def _require_frame(self, frame: str) -> None:
        if frame not in self._frames:
            raise UnknownFrameError(f"unknown frame {frame!r}; known frames: {sorted(self._frames)}")

    def _component(self, frame: str) -> set[str]:
        seen = {frame}
        queue = deque([frame])
        while queue:
            for neighbour in self._neighbours[queue.popleft()]:
                if neighbour not in seen:
                    seen.add(neighbour)
                    queue.append(neighbour)
        return seen

    def _hop(
        self, a: str, b: str, timestamp_ns: int | None, extrapolation: ExtrapolationPolicy, query: tuple[str, str]
    ) -> SE3:
        """``a_SE3_b`` for adjacent frames."""
        edge = self._edges[frozenset((a, b))]
        if edge.stamped is None:
            assert edge.static is not None
            stored = edge.static
        else:
            if timestamp_ns is None:
                raise CalibrationError(
                    f"get({query[0]!r}, {query[1]!r}): the chain {' <- '.join(self.path(*query))} has the "
                    f"time-stamped edge {edge.describe()}; pass timestamp_ns"
                )
            stored = edge.stamped.at(timestamp_ns, extrapolation=extrapolation)
        return stored if edge.dst == a else stored.inverse()

    def _hop_many(
        self, a: str, b: str, query_ns: NDArrayInt, extrapolation: ExtrapolationPolicy, query: tuple[str, str]
    ) -> tuple[NDArrayFloat, NDArrayFloat]:
        """``a_SE3_b`` at each time: ``(M, 3, 3), (M, 3)``, or ``(3, 3), (3,)`` for a static edge (broadcasts)."""
        edge = self._edges[frozenset((a, b))]
        if edge.stamped is None:
            assert edge.static is not None
            rotation, translation = edge.static.rotation, edge.static.translation
        else:
            rotation, translation = edge.stamped.at_many(query_ns, extrapolation=extrapolation)
        if edge.dst == a:
            return rotation, translation
        rotation_t = np.swapaxes(rotation, -1, -2)
        return rotation_t, -np.einsum("...ij,...j->...i", rotation_t, translation)


def _check_frame_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise CalibrationError(f"frame name: expected a non-empty string, got {name!r}")
    return name
