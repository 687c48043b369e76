"""Camera models: pinhole, OpenCV radial-tangential and fisheye (Kannala-Brandt equidistant).

Pixel convention (the same as OpenCV's): the centre of pixel ``(col, row)`` is at
``u = col, v = row``; the image covers ``-0.5 <= u < width - 0.5`` and
``-0.5 <= v < height - 0.5``. ``u`` grows to the right, ``v`` downwards. The camera frame
is x right, y down, z forward (optical axis), in metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from calibration.array_types import NDArrayFloat
from calibration.checks import check_matrix
from calibration.errors import CalibrationError

DistortionModelName = Literal["pinhole", "radtan", "fisheye"]

#: Accepted coefficient counts per model, in OpenCV order:
#: radtan (k1, k2, p1, p2[, k3[, k4, k5, k6]]), fisheye (k1, k2, k3, k4).
DISTORTION_SIZES: dict[str, tuple[int, ...]] = {"pinhole": (0,), "radtan": (4, 5, 8), "fisheye": (4,)}


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics of one camera.

    Attributes:
        width_px, height_px: image size in pixels.
        fx_px, fy_px: focal lengths in pixels.
        cx_px, cy_px: principal point in pixels (pixel-centre convention above).
        distortion_model: ``"pinhole"`` (no distortion), ``"radtan"`` (OpenCV
            ``plumb_bob`` / rational polynomial) or ``"fisheye"`` (OpenCV ``cv2.fisheye``,
            Kannala-Brandt equidistant).
        distortion: coefficients in OpenCV order; see :data:`DISTORTION_SIZES`.

    Raises:
        CalibrationError: non-positive size or focal length, non-finite values, or a
            coefficient count the model does not have.
    """

    width_px: int
    height_px: int
    fx_px: float
    fy_px: float
    cx_px: float
    cy_px: float
    distortion_model: DistortionModelName = "pinhole"
    distortion: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("width_px", "height_px"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or int(value) <= 0:
                raise CalibrationError(f"camera {name}: expected a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("fx_px", "fy_px", "cx_px", "cy_px"):
            value = float(getattr(self, name))
            if not np.isfinite(value):
                raise CalibrationError(f"camera {name}: expected a finite number, got {value!r}")
            object.__setattr__(self, name, value)
        if self.fx_px <= 0 or self.fy_px <= 0:
            raise CalibrationError(f"camera focal length: expected fx_px, fy_px > 0, got {self.fx_px}, {self.fy_px}")
        if self.distortion_model not in DISTORTION_SIZES:
            raise CalibrationError(
                f"camera distortion_model: expected one of {sorted(DISTORTION_SIZES)}, got {self.distortion_model!r}"
            )
        coeffs = tuple(float(c) for c in np.asarray(self.distortion, dtype=np.float64).ravel())
        if len(coeffs) not in DISTORTION_SIZES[self.distortion_model]:
            raise CalibrationError(
                f"camera distortion: the {self.distortion_model} model takes "
                f"{' or '.join(map(str, DISTORTION_SIZES[self.distortion_model]))} coefficients, got {len(coeffs)}"
            )
        if not all(np.isfinite(coeffs)):
            raise CalibrationError(f"camera distortion: expected finite coefficients, got {coeffs}")
        object.__setattr__(self, "distortion", coeffs)

    @classmethod
    def from_K(
        cls,
        K: NDArrayFloat,
        width_px: int,
        height_px: int,
        distortion_model: DistortionModelName = "pinhole",
        distortion: tuple[float, ...] | NDArrayFloat = (),
        *,
        name: str = "K",
    ) -> CameraModel:
        """Build from a ``(3, 3)`` intrinsic matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.

        Raises:
            CalibrationError: non-zero skew ``K[0, 1]`` or a last row other than ``[0, 0, 1]``
                (this model does not represent them).
        """
        K = check_matrix(K, name, 3, 3)
        if abs(K[0, 1]) > 1e-9 * abs(K[0, 0]):
            raise CalibrationError(f"{name}: skew K[0, 1] = {K[0, 1]!r} is not supported (expected 0)")
        if not np.allclose(K[2], [0.0, 0.0, 1.0]) or abs(K[1, 0]) > 1e-12:
            raise CalibrationError(f"{name}: expected [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")
        return cls(width_px, height_px, K[0, 0], K[1, 1], K[0, 2], K[1, 2], distortion_model, tuple(np.ravel(distortion)))

    @property
    def K(self) -> NDArrayFloat:
        """The ``(3, 3)`` intrinsic matrix."""
        return np.array([[self.fx_px, 0.0, self.cx_px], [0.0, self.fy_px, self.cy_px], [0.0, 0.0, 1.0]])
