"""Array type aliases used across the product's signatures."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

NDArrayFloat = npt.NDArray[np.float64]
NDArrayFloat32 = npt.NDArray[np.float32]
NDArrayNumber = npt.NDArray[np.floating]
NDArrayBool = npt.NDArray[np.bool_]
NDArrayInt = npt.NDArray[np.int64]
NDArrayInt32 = npt.NDArray[np.int32]
NDArrayUInt8 = npt.NDArray[np.uint8]
